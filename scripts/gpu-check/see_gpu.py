#!/usr/bin/env python3
"""A job runner for the GPU check: prints what CUDA shows it, allocates memory and multiplies
matrices for a while (so telemetry can see the GPU busy), and ends as a completed job."""
import json, os, sys, time

def say(**fields):
    print(json.dumps(fields), flush=True)

print("CUDA_VISIBLE_DEVICES=" + os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"), flush=True)
print("NVIDIA_VISIBLE_DEVICES=" + os.environ.get("NVIDIA_VISIBLE_DEVICES", "<unset>"), flush=True)
print("CUDA_DEVICE_ORDER=" + os.environ.get("CUDA_DEVICE_ORDER", "<unset>"), flush=True)
print("BERTH_UNITS=" + os.environ.get("BERTH_UNITS", "<unset>"), flush=True)
print("BERTH_DEVICES=" + os.environ.get("BERTH_DEVICES", "<unset>"), flush=True)
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("Cpus_allowed_list"):
            print(line.strip(), flush=True)
with open("/proc/self/cgroup") as f:
    print("cgroup:", " | ".join(l.strip() for l in f), flush=True)

# A device node for a GPU this job does not hold (made by the check script): the cgroup must
# refuse to open it. ENXIO/ENODEV would mean the cgroup let it through to the driver.
other = os.environ.get("CHECK_OTHER_GPU_NODE") or "/tmp/berth-gpu-check/dev/nvidia7"
try:
    os.close(os.open(other, os.O_RDWR))
    print(f"open {other}: opened (NOT confined)", flush=True)
except OSError as e:
    print(f"open {other}: errno {e.errno} {os.strerror(e.errno)}", flush=True)

import torch
n = torch.cuda.device_count()
print(f"torch {torch.__version__} cuda_available={torch.cuda.is_available()} device_count={n}", flush=True)
for i in range(n):
    p = torch.cuda.get_device_properties(i)
    uuid = getattr(p, "uuid", None)
    print(f"device {i}: {p.name} uuid=GPU-{uuid} memory={p.total_memory // (1 << 20)} MiB", flush=True)
if n == 0:
    sys.exit(3)

dev = torch.device("cuda:0")
hold = torch.empty((8 << 30) // 4, dtype=torch.float32, device=dev)  # 8 GiB held while working
a = torch.randn(8192, 8192, device=dev)
b = torch.randn(8192, 8192, device=dev)
seconds = float(os.environ.get("CHECK_BUSY_SECONDS", "12"))
start = time.time()
steps = 0
said = start
while time.time() - start < seconds:
    for _ in range(20):
        c = a @ b
    torch.cuda.synchronize()
    steps += 20
    if time.time() - said >= 1:
        said = time.time()
        say(event="progress", fraction=min(0.99, (said - start) / seconds))
elapsed = time.time() - start
tflops = steps * 2 * 8192**3 / elapsed / 1e12
print(f"matmul: {steps} multiplications of 8192x8192 in {elapsed:.1f} s, {tflops:.0f} TFLOP/s fp32, "
      f"memory allocated {torch.cuda.memory_allocated(dev) >> 20} MiB, checksum {float(c[0, 0]):.3f}", flush=True)
del hold
say(event="progress", fraction=1.0)
