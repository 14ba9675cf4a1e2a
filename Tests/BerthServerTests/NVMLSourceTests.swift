import BerthCore
import BerthServer
import BerthTestSupport
import Foundation
import Testing

enum CCompiler {
    static let path = ["/usr/bin/cc", "/opt/swift/usr/bin/clang"].first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// The NVML path of GPU telemetry without a GPU: a library with NVML's C interface (the calls
/// berthd uses, as nvml.h declares them) is compiled here, and berthd's source loads it by
/// path with dlopen, as it loads libnvidia-ml.so.1 on a GPU machine.
@Suite("GPU telemetry through NVML", .enabled(if: CCompiler.path != nil))
struct NVMLSourceTests {

    /// Two GPUs: GPU-a (index 0) at 37 % with 1 GiB in use, GPU-b (index 1) at 88 % with 3 GiB.
    static let library = """
        #include <string.h>
        typedef struct { unsigned int gpu; unsigned int memory; } nvmlUtilization_t;
        typedef struct { unsigned long long total; unsigned long long free; unsigned long long used; } nvmlMemory_t;
        typedef struct nvmlDevice_st *nvmlDevice_t;
        static int devices[2];
        int nvmlInit_v2(void) { return 0; }
        int nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
            if (index > 1) return 2; /* NVML_ERROR_INVALID_ARGUMENT */
            *device = (nvmlDevice_t)&devices[index];
            return 0;
        }
        int nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device) {
            if (strcmp(uuid, "GPU-a") == 0) return nvmlDeviceGetHandleByIndex_v2(0, device);
            if (strcmp(uuid, "GPU-b") == 0) return nvmlDeviceGetHandleByIndex_v2(1, device);
            return 6; /* NVML_ERROR_NOT_FOUND */
        }
        int nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *rates) {
            rates->gpu = (int *)device == &devices[0] ? 37 : 88;
            rates->memory = 5;
            return 0;
        }
        int nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
            memory->total = 143771ULL << 20;
            memory->used = ((int *)device == &devices[0] ? 1ULL : 3ULL) << 30;
            memory->free = memory->total - memory->used;
            return 0;
        }
        """

    @Test("berthd's NVML source reads each GPU unit's utilization and memory, by UUID or by index")
    func samples() throws {
        let dir = try TemporaryDirectory(prefix: "berth-nvml")
        defer { dir.remove() }
        try Self.library.write(toFile: dir.file("nvml.c"), atomically: true, encoding: .utf8)
        let built = try Products.run(CCompiler.path!, ["-shared", "-fPIC", "-o", dir.file("libnvidia-ml.so.1"), dir.file("nvml.c")])
        try #require(built.status == 0, "\(built)")

        let source = try #require(NVMLSampleSource.load(path: dir.file("libnvidia-ml.so.1")))
        #expect(source.name == "NVML")
        let units = [
            ComputeUnit(id: "gpu-0", kind: "h200", device: 0, pool: .dedicated, uuid: "GPU-a"),
            ComputeUnit(id: "gpu-1", kind: "h200", device: 1, pool: .dedicated),
            ComputeUnit(id: "cpu-0", kind: "cpu", device: 0, pool: .dedicated),
        ]
        let samples = try source.sample(units)
        #expect(
            samples == [
                GPUSample(index: 0, uuid: "GPU-a", utilizationPercent: 37, memoryUsedBytes: 1 << 30),
                GPUSample(index: 1, uuid: nil, utilizationPercent: 88, memoryUsedBytes: 3 << 30),
            ]
        )
        // A GPU NVML does not know, alone: an error that names it.
        #expect(throws: (any Error).self) {
            try source.sample([ComputeUnit(id: "gpu-9", kind: "h200", device: 9, pool: .dedicated, uuid: "GPU-gone")])
        }
        #expect(NVMLSampleSource.load(path: dir.file("no-such-library.so")) == nil)
    }
}
