import Foundation
import SafeTensors
import Testing
import TestSupport

/// `mpirun` on PATH (Open MPI from `scripts/bootstrap`), or nil: the data-parallel tests then skip, saying why.
enum MPITools {
    static let mpirun: String? = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
        .map { "\($0)/mpirun" }.first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Environment for a process tree that loads Open MPI. Under `scripts/test --sanitize address` leak detection is
    /// off there (memory errors are still checked): after MPI_Finalize each Open MPI 4.1 rank leaves ~117 KB
    /// unreachable whose every stack ends in a plugin Open MPI already unloaded, so LeakSanitizer can neither name
    /// nor suppress it (docs/SECURITY.md, "Sanitizers"). The same learner, actor and launcher code runs leak-checked
    /// in the one-rank tests.
    static let env: [String: String] = {
        let e = ProcessInfo.processInfo.environment
        guard e["RLIF_SANITIZER"] == "address" else { return [:] }
        return ["ASAN_OPTIONS": (e["ASAN_OPTIONS"].map { $0 + ":" } ?? "") + "detect_leaks=0"]
    }()
}

/// The data-parallel learner against the one-process learner (issue 16): the embedded default model, local mode,
/// 48 new tokens, `max_lag: 0` (so every group is sampled by the weights it trains and both runs see the same groups as long as
/// their weights agree), same seeds, 3 steps.
@Suite(.serialized,
       .enabled(if: CLI.binary != nil, "needs the release rlif binary (swift build -c release, or RLIF_BIN)"),
       .enabled(if: MPITools.mpirun != nil, "SKIP: mpirun not found (scripts/bootstrap installs openmpi-bin)"))
struct MPIParityTests {
    static let base = ["--set", "steps=3", "--set", "max_lag=0", "--set", "prompts_per_step=4", "--set", "group_size=4",
                       "--set", "checkpoint_every=1", "--set", "eval_every=0",
                       "--set", "tensorboard=false", "--actors", "1"]

    func train(_ out: URL, ranks: Int, _ extra: [String] = []) throws {
        var args = ["train", "--output-dir", out.path] + Self.base + extra
        if ranks > 1 { args += ["--learner-ranks", "\(ranks)"] }
        let r = try CLI.run(args, env: ranks > 1 ? MPITools.env : [:], timeout: 300)
        #expect(r.status == 0, "rlif \(args.joined(separator: " ")) exited \(r.status):\n\(r.err.suffix(3000))")
    }

    /// The training records of metrics.jsonl.
    func records(_ out: URL) throws -> [[String: Any]] {
        let text = try String(contentsOf: out.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").compactMap { line in
            let d = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return (d["kind"] as? String) == "train" ? d : nil
        }
    }

    /// (loss, grad_norm) of each training record of metrics.jsonl.
    func lossAndNorm(_ out: URL) throws -> [(loss: Double, norm: Double, ranks: Int)] {
        let text = try String(contentsOf: out.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").compactMap { line in
            let d = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            guard (d["kind"] as? String) == "train", let l = d["loss"] as? Double, let n = d["grad_norm"] as? Double else { return nil }
            return (l, n, d["learner_ranks"] as? Int ?? 1)
        }
    }

    /// Every tensor of a safetensors file, concatenated in name order.
    func weights(_ file: URL) throws -> [Float] {
        let f = try SafeTensorsFile(contentsOf: file)
        return try f.tensorNames.flatMap { try f.floats($0) }
    }

    func distance(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        return zip(a, b).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
    }

    func expectSameSteps(_ one: [(loss: Double, norm: Double, ranks: Int)], _ two: [(loss: Double, norm: Double, ranks: Int)]) {
        #expect(one.count == 3 && two.count == 3)
        #expect(two.allSatisfy { $0.ranks == 2 } && one.allSatisfy { $0.ranks == 1 })
        for (s, (a, b)) in zip(one, two).enumerated() {
            // Loss: 1e-4 relative, plus an absolute 1e-6. On-policy (ratio 1) the PPO term is Σ A_i·L_i / N over
            // group advantages that sum to zero: a cancellation that leaves float rounding (e.g. 2.9e-8 vs 4.9e-8
            // with equal lengths), which any change of summation order moves by 100%. The grad norm and the weights
            // are not cancellations and are held to the relative bounds alone.
            #expect(abs(a.loss - b.loss) <= 1e-4 * max(abs(a.loss), abs(b.loss)) + 1e-6, "step \(s + 1) loss: 1 rank \(a.loss), 2 ranks \(b.loss)")
            #expect(abs(a.norm - b.norm) <= 1e-4 * max(abs(a.norm), abs(b.norm)), "step \(s + 1) grad norm: 1 rank \(a.norm), 2 ranks \(b.norm)")
        }
    }

    /// Full fine-tuning: per-step loss and grad norm within 1e-4 relative; after 3 steps ‖w₂ − w₁‖ ≤ 1e-3·‖w₁ − w₀‖.
    /// Then the 2-rank run's step-2 checkpoint resumed on 1 rank reaches the 1-rank run's step-3 weights (resume
    /// with a different rank count).
    @Test func twoRanksTrainLikeOneAndResumeOnOne() throws {
        let dir = try Fixtures.temporaryDirectory("rlif-mpi")
        defer { try? FileManager.default.removeItem(at: dir) }
        let one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two")
        try train(one, ranks: 1)
        try train(two, ranks: 2)
        expectSameSteps(try lossAndNorm(one), try lossAndNorm(two))
        let w0 = try weights(Fixtures.repoRoot.appendingPathComponent("Sources/rlif/Resources/default/model/model.safetensors"))
        let w1 = try weights(one.appendingPathComponent("checkpoint-000003/model.safetensors"))
        let w2 = try weights(two.appendingPathComponent("checkpoint-000003/model.safetensors"))
        let update = distance(w1, w0), gap = distance(w2, w1)
        #expect(update > 0, "training did not move the weights")
        #expect(gap <= 1e-3 * update, "‖w₂ − w₁‖ = \(gap), ‖w₁ − w₀‖ = \(update)")

        // Resume the 2-rank run from its step-2 checkpoint with 1 rank.
        let resumed = dir.appendingPathComponent("resumed")
        try FileManager.default.copyItem(at: two, to: resumed)
        try FileManager.default.removeItem(at: resumed.appendingPathComponent("checkpoint-000003"))
        try "checkpoint-000002".write(to: resumed.appendingPathComponent("latest"), atomically: true, encoding: .utf8)
        let r = try CLI.run(["train", "--output-dir", resumed.path, "--resume"] + Self.base, timeout: 300)
        #expect(r.status == 0, "resume exited \(r.status):\n\(r.err.suffix(3000))")
        let w3 = try weights(resumed.appendingPathComponent("checkpoint-000003/model.safetensors"))
        #expect(distance(w3, w1) <= 1e-3 * update, "resumed on 1 rank: ‖w − w₁‖ = \(distance(w3, w1)), ‖w₁ − w₀‖ = \(update)")
    }

    /// LoRA: only the adapters' gradients are reduced; the same per-step numbers and adapter updates (lora_B starts
    /// at 0, so ‖B₁‖ is its update). With `recompute_self_certainty: always` every group is re-scored each step,
    /// split over the ranks and shared (`GRPOTrainer.rescore(groups:)`): the rewards must be the one-process ones.
    @Test func loraTwoRanksTrainLikeOne() throws {
        let dir = try Fixtures.temporaryDirectory("rlif-mpi")
        defer { try? FileManager.default.removeItem(at: dir) }
        let one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two")
        let lora = ["--set", "lora.rank=4", "--set", "lora.alpha=8", "--set", "learning_rate=1e-3",
                    "--set", "recompute_self_certainty=always"]
        try train(one, ranks: 1, lora)
        try train(two, ranks: 2, lora)
        expectSameSteps(try lossAndNorm(one), try lossAndNorm(two))
        let r1 = try records(one), r2 = try records(two)
        #expect(r1.map { $0["rescored_groups"] as? Int } == [4, 4, 4] && r2.map { $0["rescored_groups"] as? Int } == [4, 4, 4])
        for (s, (a, b)) in zip(r1, r2).enumerated() {
            let x = a["reward_mean"] as! Double, y = b["reward_mean"] as! Double
            #expect(abs(x - y) <= 1e-6 * abs(x), "step \(s + 1) re-scored reward mean: 1 rank \(x), 2 ranks \(y)")
        }
        let f1 = try SafeTensorsFile(contentsOf: one.appendingPathComponent("checkpoint-000003/adapter_model.safetensors"))
        let f2 = try SafeTensorsFile(contentsOf: two.appendingPathComponent("checkpoint-000003/adapter_model.safetensors"))
        let names = f1.tensorNames.filter { $0.contains("lora_B") }
        #expect(!names.isEmpty && names == f2.tensorNames.filter { $0.contains("lora_B") })
        let b1 = try names.flatMap { try f1.floats($0) }, b2 = try names.flatMap { try f2.floats($0) }
        let update = distance(b1, [Float](repeating: 0, count: b1.count))
        #expect(update > 0)
        #expect(distance(b2, b1) <= 1e-3 * update, "‖B₂ − B₁‖ = \(distance(b2, b1)), ‖B₁‖ = \(update)")
    }
}

/// Ranks that do not hold the same weights stop before training, naming the ranks (the weight-hash check).
@Suite(.serialized,
       .enabled(if: CLI.binary != nil, "needs the release rlif binary (swift build -c release, or RLIF_BIN)"),
       .enabled(if: MPITools.mpirun != nil, "SKIP: mpirun not found (scripts/bootstrap installs openmpi-bin)"))
struct MPIWeightCheckTests {
    /// Two ranks started (MPMD) with different seeds, so their LoRA adapters start different: both stop at the
    /// check before the first step with the mismatch named, and mpirun exits nonzero.
    @Test func ranksWithDifferentWeightsStopBeforeTraining() throws {
        let dir = try Fixtures.temporaryDirectory("rlif-mpi-hash")
        defer { try? FileManager.default.removeItem(at: dir) }
        func rank(seed: Int) -> [String] {
            ["-np", "1", CLI.binary!.path, "learner", "--bind", "ipc://\(dir.path)/l", "--output-dir", dir.appendingPathComponent("run").path,
             "--set", "lora.rank=4", "--set", "seed=\(seed)", "--set", "eval_every=0"]
        }
        let p = try Spawned(["--oversubscribe", "--bind-to", "none", "--mca", "btl_vader_single_copy_mechanism", "none"]
                            + (getuid() == 0 ? ["--allow-run-as-root"] : []) + rank(seed: 1) + [":"] + rank(seed: 2),
                            env: MPITools.env, executable: URL(fileURLWithPath: MPITools.mpirun!))
        let status = p.finish(seconds: 300)
        let text = p.err
        #expect(status != 0)
        #expect(text.contains("weights differ between learner ranks after 0 steps"), "\(text.suffix(2000))")
        let metrics = try? String(contentsOf: dir.appendingPathComponent("run/metrics.jsonl"), encoding: .utf8)
        #expect(metrics?.isEmpty ?? true, "no step may have been trained")
    }
}

/// Without a usable Open MPI, a learner that an MPI launcher started says so before touching anything (no mpirun
/// needed: the launcher's environment variable is enough to make it try).
@Suite(.enabled(if: CLI.binary != nil, "needs the release rlif binary (swift build -c release, or RLIF_BIN)"))
struct MPIMissingTests {
    @Test func learnerUnderALauncherWithoutMPINamesTheLibrary() throws {
        let dir = try Fixtures.temporaryDirectory("rlif-nompi")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["learner", "--bind", "ipc://\(dir.path)/l", "--output-dir", dir.appendingPathComponent("run").path],
                            env: ["OMPI_COMM_WORLD_SIZE": "2", "RLIF_MPI_LIBRARY": dir.appendingPathComponent("no-libmpi.so").path])
        let text = r.err
        #expect(r.status != 0)
        #expect(text.contains("started by mpirun with 2 ranks, but MPI is not usable: cannot load Open MPI"), "\(text)")
        #expect(text.contains("no-libmpi.so"))
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("run").path), "nothing may be written")
    }
}
