import Foundation
import Logging
import Training

/// Start-up of a learner that may run under mpirun/srun.
public enum DataParallelLaunch {
    /// The MPI world when an MPI launcher started this process (MPI initialised), else nil — a plain
    /// `rlif learner` never loads MPI. Under a launcher, a missing Open MPI is an error (the user asked for ranks).
    public static func world(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> MPIWorld? {
        guard let launch = MPILaunch.detect(environment) else { return nil }
        do { return try MPIWorld() } catch {
            throw MPIError("started by \(launch.launcher) with \(launch.size) ranks, but MPI is not usable: \(error)")
        }
    }

    /// Rank 0's decision about the output directory (fresh or resume from which checkpoint), given to every rank:
    /// only rank 0 inspects and prepares the directory. `start` is rank 0's (nil elsewhere). The checkpoint must be
    /// readable at the same path on every rank (a shared file system, as for the model and prompts).
    public static func shared(_ start: RunDirectory.Start?, world: MPIWorld?) throws -> RunDirectory.Start {
        guard let w = world, w.size > 1 else { return start ?? .fresh }
        var bytes: [UInt8] = []
        if w.rank == 0, case let .resume(dir)? = start { bytes = Array(dir.path.utf8) }
        let got = try w.broadcast(bytes, root: 0)
        if w.rank == 0 { return start ?? .fresh }
        if got.isEmpty { return .fresh }
        let path = String(decoding: got, as: UTF8.self)
        guard FileManager.default.fileExists(atPath: path) else {
            throw MPIError("rank \(w.rank): checkpoint \(path) (rank 0's resume point) is not readable here; the output directory must be on a file system every rank shares")
        }
        return .resume(checkpoint: URL(fileURLWithPath: path))
    }
}

/// The `mpirun` command line `rlif train --learner-ranks N` runs the local-mode learner with.
public enum MPIRun {
    /// `mpirun` on PATH, or nil.
    public static func find(path: String? = ProcessInfo.processInfo.environment["PATH"]) -> URL? {
        for dir in (path ?? "/usr/bin:/bin").split(separator: ":") {
            let u = URL(fileURLWithPath: String(dir)).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        return nil
    }

    /// Arguments after `mpirun`: N ranks of `executable arguments…` on this host. `--oversubscribe`: more ranks
    /// than cores is allowed (local mode shares the host with the actors); `--bind-to none`: a rank's compute
    /// threads may use every core instead of the one Open MPI would pin it to; no single-copy (CMA) transfers in
    /// shared memory, which containers without CAP_SYS_PTRACE refuse ("Operation not permitted" from vader; plain
    /// copies instead); `--allow-run-as-root` only when running as root (Open MPI refuses root without it).
    public static func arguments(ranks: Int, executable: String, arguments: [String], isRoot: Bool) -> [String] {
        var a = ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none", "--mca", "btl_vader_single_copy_mechanism", "none"]
        if isRoot { a.append("--allow-run-as-root") }
        return a + [executable] + arguments
    }
}
