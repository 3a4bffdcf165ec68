import CMPI
import Foundation
import Training

/// An MPI failure or misuse, one line naming the call.
public struct MPIError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// How this process was started: by mpirun/mpiexec (Open MPI) or srun (Slurm), read from the launcher's
/// environment before MPI is loaded, so a plain `rlif learner` never touches MPI.
public struct MPILaunch: Equatable, Sendable {
    public var launcher: String
    /// The world size the launcher announced.
    public var size: Int

    public init(launcher: String, size: Int) { self.launcher = launcher; self.size = size }

    /// nil when no MPI launcher started this process. Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE; PMIx launchers
    /// (Open MPI 5's prterun, `srun --mpi=pmix`) set PMIX_RANK with the size in OMPI_COMM_WORLD_SIZE or SLURM_NTASKS;
    /// `srun --mpi=pmi2` sets PMI_SIZE. SLURM_NTASKS alone (a batch script's environment) is not a launch.
    public static func detect(_ env: [String: String]) -> MPILaunch? {
        if let s = env["OMPI_COMM_WORLD_SIZE"].flatMap(Int.init) { return MPILaunch(launcher: "mpirun", size: s) }
        if env["PMIX_RANK"] != nil, let s = (env["PMIX_SIZE"] ?? env["SLURM_NTASKS"] ?? env["SLURM_NPROCS"]).flatMap(Int.init) {
            return MPILaunch(launcher: env["SLURM_JOB_ID"] != nil ? "srun (PMIx)" : "PMIx", size: s)
        }
        if let s = env["PMI_SIZE"].flatMap(Int.init) { return MPILaunch(launcher: "srun (PMI-2)", size: s) }
        return nil
    }
}

/// MPI_COMM_WORLD of this process (Open MPI loaded with dlopen, see Sources/CMPI). One per process: MPI can be
/// initialised once. Collectives are called by one thread at a time (MPI_THREAD_SERIALIZED).
public final class MPIWorld: DataParallelGroup, @unchecked Sendable {  // used by one thread at a time, by contract
    public let rank: Int
    public let size: Int
    /// "Open MPI v4.1.4, ..." for the log.
    public let libraryVersion: String
    private var finalized = false

    /// Loads libmpi (RLIF_MPI_LIBRARY overrides the library path) and initialises MPI.
    public init(libraryPath: String? = ProcessInfo.processInfo.environment["RLIF_MPI_LIBRARY"]) throws {
        var err = [CChar](repeating: 0, count: 1024)
        if rlif_mpi_load(libraryPath, &err, err.count) != 0 {
            throw MPIError(Self.text(err))
        }
        var provided: Int32 = 0
        try Self.check(rlif_mpi_init_serialized(&provided), "MPI_Init_thread")
        guard provided >= 2 else {
            throw MPIError("MPI_Init_thread: the library grants thread level \(provided), rlif needs MPI_THREAD_SERIALIZED (2)")
        }
        var r: Int32 = 0, s: Int32 = 0
        try Self.check(rlif_mpi_world(&r, &s), "MPI_Comm_rank/size")
        rank = Int(r)
        size = Int(s)
        var v = [CChar](repeating: 0, count: 1024)
        libraryVersion = rlif_mpi_library_version(&v, Int32(v.count)) == 0
            ? Self.text(v).split(separator: "\n").first.map(String.init) ?? "" : "unknown"
    }

    /// A NUL-terminated C string in a fixed buffer.
    static func text(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func check(_ rc: Int32, _ what: String) throws {
        guard rc != 0 else { return }
        var buf = [CChar](repeating: 0, count: 1024)
        rlif_mpi_error_string(rc, &buf, Int32(buf.count))
        throw MPIError("\(what): \(Self.text(buf))")
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        guard count > 0 else { return }
        guard count <= Int(Int32.max) else { throw MPIError("MPI_Allreduce: \(count) floats exceed an MPI count; use allreduceGradients") }
        try Self.check(rlif_mpi_allreduce_sum_float(buffer, Int32(count)), "MPI_Allreduce(\(count) floats)")
    }

    public func allreduceSum(_ values: inout [Double]) throws {
        let n = values.count
        try values.withUnsafeMutableBufferPointer { b in
            try Self.check(rlif_mpi_allreduce_sum_double(b.baseAddress, Int32(n)), "MPI_Allreduce(\(n) doubles)")
        }
    }

    /// Every rank's `value`, indexed by rank.
    public func allgather(_ value: UInt64) throws -> [UInt64] {
        var out = [UInt64](repeating: 0, count: size)
        try Self.check(rlif_mpi_allgather_u64(value, &out), "MPI_Allgather")
        return out
    }

    public func barrier() throws { try Self.check(rlif_mpi_barrier(), "MPI_Barrier") }

    /// Broadcasts `bytes` from `root` (its argument; ignored elsewhere) and returns them on every rank. The length
    /// goes first with a non-blocking broadcast polled every `pollMs` (sleeping in between): a rank waiting for
    /// rank 0 — which may wait minutes for actors — then leaves its core to the others instead of spinning in
    /// MPI's progress loop. The payload follows with a blocking broadcast.
    public func broadcast(_ bytes: [UInt8], root: Int = 0, pollMs: Int = 2) throws -> [UInt8] {
        var header = [UInt64(bytes.count)]
        try header.withUnsafeMutableBytes { h in
            var req: UnsafeMutableRawPointer?
            try Self.check(rlif_mpi_ibcast_bytes(h.baseAddress, Int32(h.count), Int32(root), &req), "MPI_Ibcast")
            var done: Int32 = 0
            while true {
                try Self.check(rlif_mpi_test(&req, &done), "MPI_Test")
                if done != 0 { break }
                usleep(useconds_t(pollMs * 1000))
            }
        }
        let n = Int(header[0])
        guard n <= Int(Int32.max) else { throw MPIError("MPI_Bcast: \(n) bytes exceed an MPI count") }
        var payload = rank == root ? bytes : [UInt8](repeating: 0, count: n)
        if n > 0 {
            try payload.withUnsafeMutableBytes { p in
                try Self.check(rlif_mpi_bcast_bytes(p.baseAddress, Int32(n), Int32(root)), "MPI_Bcast(\(n) bytes)")
            }
        }
        return payload
    }

    /// Ends every rank of the job (a failed rank must not leave the others waiting in a collective).
    public func abort(code: Int32) -> Never {
        _ = rlif_mpi_abort(code)
        exit(code)
    }

    public func finalize() {
        guard !finalized else { return }
        finalized = true
        _ = rlif_mpi_finalize()
    }
}
