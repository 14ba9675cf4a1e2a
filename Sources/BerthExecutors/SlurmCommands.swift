public import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Slurm's own commands, as an admin would run them: berthd does on a cluster exactly what
/// `squeue`, `scontrol show reservation` and `sacct` show there afterwards.
public struct SlurmCommands: Sendable {
    public var sbatch: String
    public var scancel: String
    public var squeue: String
    public var sacct: String
    public var scontrol: String
    public var sinfo: String
    /// How long one command may take before it counts as failed: a controller that does
    /// not answer must not hold berthd up for ever.
    public var timeout: TimeInterval = 30

    public init(sbatch: String, scancel: String, squeue: String, sacct: String, scontrol: String, sinfo: String) {
        self.sbatch = sbatch
        self.scancel = scancel
        self.squeue = squeue
        self.sacct = sacct
        self.scontrol = scontrol
        self.sinfo = sinfo
    }

    /// A command that failed, with what it said: Slurm's reason, passed on to the caller.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var command: String
        public var status: Int32
        /// What it printed on stderr (else stdout), first line first, trimmed.
        public var message: String

        public var description: String { "\(command) failed (exit \(status)): \(message)" }
    }

    /// Runs `program` with `arguments` and returns its stdout. Blocks: from async code, use `call`.
    public func run(_ program: String, _ arguments: [String]) throws(Failure) -> String {
        let name = (program as NSString).lastPathComponent
        let result: (status: Int32?, out: Data, err: Data)
        do {
            result = try ChildProcess.output(Self.resolve(program), arguments, timeout: timeout)
        } catch {
            throw Failure(command: name, status: -1, message: "cannot run \(program): \(error); check [executors.slurm] \(name)")
        }
        guard let status = result.status else {
            throw Failure(command: name, status: -1, message: "no answer within \(Int(timeout)) s; is slurmctld up (scontrol ping)?")
        }
        let stdout = String(decoding: result.out, as: UTF8.self)
        guard status == 0 else {
            let said = String(decoding: result.err, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            let text = said.isEmpty ? stdout.trimmingCharacters(in: .whitespacesAndNewlines) : said
            throw Failure(command: name, status: status, message: text.isEmpty ? "no message" : text)
        }
        return stdout
    }

    /// `run` on a thread of its own, off the cooperative pool.
    public func call(_ program: String, _ arguments: [String]) async throws(Failure) -> String {
        let result: Result<String, Failure> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                do throws(Failure) {
                    continuation.resume(returning: .success(try run(program, arguments)))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }

    /// A name without a slash is looked up in `PATH`, as a shell would.
    static func resolve(_ program: String) -> String {
        guard !program.contains("/") else { return program }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for folder in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(folder)/\(program)") {
            return "\(folder)/\(program)"
        }
        return "/usr/bin/\(program)"
    }
}

/// Names berthd gives what it makes on a cluster: prefixed with a token of its host and ledger,
/// so two berthds sharing one cluster never take each other's jobs or reservations for their own.
public struct SlurmNaming: Sendable, Equatable {
    public let token: String

    public init(token: String) {
        self.token = token
    }

    /// The token of this host's berthd on the ledger at `ledgerPath`.
    public init(ledgerPath: String) {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count)
        let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // FNV-1a: stable across runs and builds, unlike Swift's seeded hashing.
        var hash: UInt32 = 2_166_136_261
        for byte in "\(host)|\(ledgerPath)".utf8 {
            hash = (hash ^ UInt32(byte)) &* 16_777_619
        }
        token = String(format: "%08x", hash)
    }

    /// Every name starts with this.
    public var prefix: String { "berth-\(token)-" }

    /// The Slurm job of a runner named `name` (`job-12`, `serve-reservation-3`).
    public func job(_ name: String) -> String { prefix + name }

    /// The Slurm reservation that holds a berth reservation's nodes.
    public func reservation(_ id: Int64) -> String { prefix + "r\(id)" }

    /// The berth reservation a Slurm reservation's name stands for, if it is one of ours.
    public func reservationID(_ name: String) -> Int64? {
        guard name.hasPrefix(prefix + "r") else { return nil }
        return Int64(name.dropFirst(prefix.count + 1))
    }
}
