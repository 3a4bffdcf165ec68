import Foundation
import Model
import Testing
import TestSupport

/// The `rlif` executable as a user runs it: exit codes, signals and the errors of the command line (issue 15),
/// through `CLI` (TestSupport).
@Suite(.serialized, .enabled(if: CLI.binary != nil, "needs the release rlif binary (swift build -c release, or RLIF_BIN)"))
struct CLITests {
    /// Before: Ctrl-C in a single-process run was ignored (all steps ran, rc 0).
    @Test func sigintStopsASingleProcessRunWithACheckpointAnd130() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let out = d.appendingPathComponent("run").path
        let r = try CLI.run(["train", "--single-process", "--output-dir", out, "--set", "steps=30",
                             "--set", "checkpoint_every=0", "--set", "eval_every=0"],
                            interruptWith: SIGINT, whenOut: "step 2/30")
        #expect(r.status == 130, "\(r.err)")
        #expect(r.err.contains("--resume"))
        let latest = try String(contentsOfFile: out + "/latest", encoding: .utf8)
        #expect(latest.hasPrefix("checkpoint-"))
        #expect(!r.out.contains("step 30/30"))

        // Before: a rerun into the same directory silently overwrote metrics.jsonl.
        let again = try CLI.run(["train", "--single-process", "--output-dir", out, "--set", "steps=30"])
        #expect(again.status != 0)
        #expect(again.err.contains("already holds a run"))
    }

    /// Before: SIGTERM killed the run at once (rc 143) with no checkpoint.
    @Test func sigtermAlsoCheckpointsAnd143() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let out = d.appendingPathComponent("run").path
        let r = try CLI.run(["train", "--single-process", "--output-dir", out, "--set", "steps=30",
                             "--set", "checkpoint_every=0", "--set", "eval_every=0"],
                            interruptWith: SIGTERM, whenOut: "step 1/30")
        #expect(r.status == 143, "\(r.err)")
        #expect(FileManager.default.fileExists(atPath: out + "/latest"))
    }

    /// A long run split over time-limited jobs (a 3-hour session, a Slurm time limit): `--stop-after-steps 1` of a
    /// 3-step run exits 0 with a checkpoint of step 1 although `checkpoint_every: 0` writes none, and `--resume`
    /// runs steps 2 and 3 — the LR schedule spans the 3 steps (`ResumeTests.resumedRunIsBitIdentical` holds that a
    /// run stopped this way and resumed is bit-identical to one that never stopped).
    @Test func stopAfterStepsCheckpointsAndResumeFinishesTheRun() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let out = d.appendingPathComponent("run").path
        let args = ["train", "--single-process", "--output-dir", out, "--set", "steps=3", "--set", "checkpoint_every=0",
                    "--set", "eval_every=0", "--set", "max_new_tokens=8"]
        func trainSteps() throws -> [Int] {
            try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
                let d = try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
                return d?["kind"] as? String == "train" ? d?["step"] as? Int : nil
            }
        }
        let first = try CLI.run(args + ["--stop-after-steps", "1"])
        #expect(first.status == 0, "\(first.err)")
        #expect(try String(contentsOfFile: out + "/latest", encoding: .utf8) == "checkpoint-000001")
        #expect(try trainSteps() == [1])
        let rest = try CLI.run(args + ["--resume"])
        #expect(rest.status == 0, "\(rest.err)")
        #expect(try trainSteps() == [1, 2, 3])
        let past = try CLI.run(args + ["--resume", "--stop-after-steps", "4"])
        #expect(past.status != 0 && past.err.contains("past the run's steps"), "\(past.err)")
    }

    /// `base_weights: bf16` in full fine-tuning holds the frozen reference copy as BF16 while the policy trains in
    /// F32. At step 1 no update has happened, so the policy is the initial model: its KL to an F32 reference is
    /// exactly 0, to the BF16-rounded reference tiny but not 0 (the reference really is the rounded copy). The
    /// plan prints the reference at its BF16 size; a run with nothing frozen (β 0, policy self-certainty) refuses
    /// the setting before any work.
    @Test func bf16ReferenceInFullFineTuning() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        // The embedded default's weights are BF16 values (rounding them is exact): this copy is perturbed by
        // ~0.1% per weight so that the BF16 reference differs from the F32 one.
        let defaultModel = Fixtures.repoRoot.appendingPathComponent("Sources/rlif/Resources/default/model")
        let m = try Transformer.load(directory: defaultModel)
        for i in 0..<m.parameters.count { m.parameters.pointer[i] *= 1 + 1e-3 * Float(sin(Double(i))) }
        let model = d.appendingPathComponent("model")
        try m.save(to: model)
        try FileManager.default.copyItem(at: defaultModel.appendingPathComponent("tokenizer.json"),
                                         to: model.appendingPathComponent("tokenizer.json"))
        func stepOneKL(_ dtype: String) throws -> (kl: Double, err: String) {
            let out = d.appendingPathComponent("run-\(dtype)").path
            let r = try CLI.run(["train", "--single-process", "--output-dir", out, "--set", "model=\(model.path)",
                                 "--set", "steps=1", "--set", "eval_every=0", "--set", "max_new_tokens=8",
                                 "--set", "kl_beta=0.05", "--set", "base_weights=\(dtype)"])
            #expect(r.status == 0, "\(r.err)")
            let line = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").first {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["kind"] as? String == "train"
            }
            let m = try #require(line.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
            return (try #require(m["kl"] as? Double), r.err)
        }
        let f32 = try stepOneKL("f32"), bf16 = try stepOneKL("bf16")
        #expect(f32.kl == 0, "an F32 reference equals the policy at step 1")
        // k3 = e^x − x − 1 of x = ref − logp ≈ 1e-4 is ~x²/2 ≈ 5e-9, below F32's rounding of e^x (~6e-8), so its
        // sign is noise (as in PyTorch's F32 k3); that it is not 0 is the point.
        #expect(bf16.kl != 0 && abs(bf16.kl) < 1e-3, "KL to the BF16 reference at step 1: \(bf16.kl)")
        #expect(bf16.err.contains("matrices BF16 (base_weights: bf16)") && !f32.err.contains("matrices BF16"), "\(bf16.err)")
        let none = try CLI.run(["train", "--single-process", "--output-dir", d.appendingPathComponent("none").path,
                                "--set", "steps=1", "--set", "kl_beta=0", "--set", "base_weights=bf16"])
        #expect(none.status != 0 && none.err.contains("base_weights") && none.err.contains("neither"), "\(none.err)")
    }

    /// A LoRA run through the CLI on the embedded default: its checkpoint is a PEFT directory; `rlif merge` of it and
    /// `rlif generate --adapter` with it give the same greedy completions, which differ from the base model's.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: Fixtures.repoRoot.appendingPathComponent("Sources/rlif/Resources/default/model/model.safetensors").path),
                   "needs Sources/rlif/Resources/default/model"))
    func loraRunMergeAndAdapterGenerateAgree() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let base = Fixtures.repoRoot.appendingPathComponent("Sources/rlif/Resources/default/model").path
        let out = d.appendingPathComponent("run").path
        let t = try CLI.run(["train", "--single-process", "--output-dir", out, "--set", "steps=2", "--set", "eval_every=0",
                             "--set", "lora.rank=4", "--set", "lora.alpha=16", "--set", "learning_rate=0.05",
                             "--set", "lr_schedule=constant", "--set", "warmup_ratio=0", "--set", "temperature=2"])
        #expect(t.status == 0, "\(t.err)")
        let ckpt = d.appendingPathComponent("run/checkpoint-000002")
        #expect(FileManager.default.fileExists(atPath: ckpt.appendingPathComponent("adapter_config.json").path))
        let merged = d.appendingPathComponent("merged").path
        let m = try CLI.run(["merge", "--base", base, "--adapter", ckpt.path, "--out", merged])
        #expect(m.status == 0, "\(m.err)")
        let prompt = ["--prompt", "Tom has 3 apples and buys 4 more. How many apples does he have?", "--max-new-tokens", "24", "--json"]
        let viaMerge = try CLI.run(["generate", "--model", merged] + prompt)
        let viaAdapter = try CLI.run(["generate", "--model", base, "--adapter", ckpt.path] + prompt)
        let plain = try CLI.run(["generate", "--model", base] + prompt)
        #expect(viaMerge.status == 0 && viaAdapter.status == 0 && plain.status == 0, "\(viaMerge.err) \(viaAdapter.err)")
        func text(_ out: String) -> String? {
            (try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]).flatMap { ($0["completions"] as? [[String: Any]])?.first?["text"] as? String }
        }
        #expect(text(viaMerge.out) != nil, "\(viaMerge.out)")
        #expect(text(viaMerge.out) == text(viaAdapter.out), "merged: \(viaMerge.out)\nadapter: \(viaAdapter.out)")
        #expect(text(viaAdapter.out) != text(plain.out), "the adapters changed nothing: the comparison is vacuous")
    }

    /// Before: `--resume` with no checkpoint silently started from scratch.
    @Test func resumeWithNothingToResumeFails() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let r = try CLI.run(["train", "--single-process", "--output-dir", d.path, "--resume"])
        #expect(r.status != 0)
        #expect(r.err.contains("no checkpoint"))
    }

    /// Before: accepted silently, or "Missing value for '--temperature'", or the top-level usage.
    @Test func badOptionsNameTheOptionAndTheSubcommand() throws {
        let model = Fixtures.repoRoot.appendingPathComponent("Sources/rlif/Resources/default/model").path
        let cases: [([String], String)] = [
            (["generate", "--model", model, "--prompt", "1+1", "--temperature", "-1"], "--temperature"),
            (["generate", "--model", model, "--prompt", "1+1", "--batch-sequences", "0"], "--batch-sequences"),
            (["generate", "--model", model, "--prompt", "1+1", "--threads", "0"], "--threads"),
            (["eval", "--model", model, "--data", "x.jsonl", "--limit", "0"], "--limit"),
            (["train", "--log-level", "verbose"], "--log-level"),
            (["train", "--single-process", "--set", "stepz=1"], "did you mean 'steps'"),
            (["train", "--stop-after-steps", "1"], "--stop-after-steps needs --single-process"),
            (["train", "--single-process", "--stop-after-steps", "0"], "--stop-after-steps must be >= 1"),
        ]
        for (args, needle) in cases {
            let r = try CLI.run(args)
            #expect(r.status != 0, "\(args)")
            #expect(r.err.contains(needle), "\(args): \(r.err)")
            // The subcommand's usage, not the top-level one.
            if args[0] != "train" || needle == "--log-level" {
                #expect(r.err.contains("rlif \(args[0])"), "\(args): \(r.err)")
            }
        }
    }
}
