import Foundation
import Testing
import TestSupport

/// `rlif train` in local mode — the real distributed system: this executable spawns one learner and actor
/// processes that talk over ipc:// — for two steps on the embedded default: it exits 0, each step has one metrics
/// record with its rewards and loss, every sampled group was trained on (2 steps × 8 prompts), the final
/// checkpoint holds an HF model directory, and a second run into the same directory is refused.
@Suite(.serialized, .enabled(if: CLI.binary != nil, "needs the release rlif binary (swift build -c release, or RLIF_BIN)"))
struct LocalModeTests {
    @Test func shortLocalRunTrainsWithALearnerAndActorProcesses() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let out = d.appendingPathComponent("run").path
        let r = try CLI.run(["train", "--output-dir", out, "--actors", "2", "--set", "steps=2", "--set", "eval_every=0",
                             "--set", "prompts_per_step=4", "--set", "max_new_tokens=16", "--set", "checkpoint_every=0"],
                            timeout: 300)
        #expect(r.status == 0, "stdout: \(r.out)\nstderr: \(r.err)")
        #expect(r.err.contains("local mode: learner + 2 actors"), "\(r.err)")
        let lines = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let rows = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let steps = rows.filter { ($0["kind"] as? String) == "train" }
        #expect(steps.compactMap { $0["step"] as? Int } == [1, 2], "\(lines)")
        for s in steps {
            #expect((s["loss"] as? Double)?.isFinite == true && (s["reward_std"] as? Double).map { $0 >= 0 } == true, "\(s)")
            #expect((s["response_length"] as? Double).map { $0 > 0 && $0 <= 16 } == true, "\(s)")
        }
        let latest = try String(contentsOfFile: out + "/latest", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(latest == "checkpoint-000002")
        for f in ["config.json", "model.safetensors", "trainer_state.json", "optimizer.safetensors"] {
            #expect(FileManager.default.fileExists(atPath: "\(out)/\(latest)/\(f)"), "\(f)")
        }
        let again = try CLI.run(["train", "--output-dir", out, "--set", "steps=2"])
        #expect(again.status != 0 && again.err.contains("already holds a run"), "\(again.err)")
    }
}
