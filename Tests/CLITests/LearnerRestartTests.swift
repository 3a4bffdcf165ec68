import Foundation
import Testing
import TestSupport

/// Issue 15, first row: `rlif learner` on loopback with one `rlif actor`, the learner `kill -9`ed mid-run and started
/// again with `--resume` on the same endpoint while the actor keeps running. Before: the resumed learner (behind
/// the actor's weights) rejected one group, then nothing happened and nothing was logged until SIGINT.
@Suite(.serialized, .enabled(if: CLI.binary != nil, "needs the release rlif binary (swift build -c release, or RLIF_BIN)"))
struct LearnerRestartTests {
    /// Training rows' "step" values of metrics.jsonl (eval rows have "kind": "eval").
    static func trainingSteps(_ metrics: URL) throws -> [Int] {
        try String(contentsOf: metrics, encoding: .utf8).split(separator: "\n").compactMap { line in
            let row = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return (row?["kind"] as? String) == "eval" ? nil : row?["step"] as? Int
        }
    }

    /// With LoRA too (`lora: true`): the actor applies the adapters, so it holds the frozen base of the killed
    /// learner; after the restart it fetches the base again (a new incarnation may have loaded another one) before
    /// the resumed learner's adapter versions (docs/PROTOCOL.md "Adapter-only versions").
    @Test(arguments: [false, true])
    func learnerKilledAndResumedWhileTheActorRunsFinishesEveryStepOnce(lora: Bool) throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let out = d.appendingPathComponent("run")
        let port = Int.random(in: 20_000..<60_000)
        let bind = "tcp://127.0.0.1:\(port)"
        let steps = 6
        let learnerArgs = ["learner", "--bind", bind, "--output-dir", out.path, "--set", "steps=\(steps)",
                           "--set", "checkpoint_every=2", "--set", "eval_every=0", "--set", "prompts_per_step=4",
                           "--set", "group_size=4", "--set", "max_new_tokens=16", "--set", "heartbeat_interval_ms=200",
                           "--set", "heartbeat_timeout_ms=2000", "--set", "tensorboard=false"]
                          + (lora ? ["--set", "lora.rank=4", "--set", "lora.alpha=8"] : [])
        let first = try Spawned(learnerArgs)
        let actor = try Spawned(["actor", "--learner", bind, "--id", "a1", "--threads", "1"])
        defer { if actor.p.isRunning { kill(actor.p.processIdentifier, SIGKILL) } }
        // Step 3 trained (checkpoint after step 2): the actor holds v4 or v5, the resumed learner starts at v3.
        #expect(first.waitFor("step 3/\(steps)", seconds: 180), "learner never reached step 3: \(first.err.suffix(2000))")
        kill(first.p.processIdentifier, SIGKILL)
        #expect(first.finish(seconds: 10) == 128 + SIGKILL)
        Thread.sleep(forTimeInterval: 0.5)

        let second = try Spawned(learnerArgs + ["--resume"])
        let rc = second.finish(seconds: 240)
        #expect(rc == 0, "resumed learner: rc \(rc)\n\(second.err.suffix(3000))")
        #expect(second.err.contains("resumed from checkpoint-"), "\(second.err.prefix(2000))")
        let actorRC = actor.finish(seconds: 30)
        #expect(actorRC == 0, "actor: rc \(actorRC)\n\(actor.err.suffix(3000))")
        #expect(actor.err.contains("learner restarted"), "the actor must notice the new incarnation: \(actor.err.suffix(3000))")

        // Every step once in metrics.jsonl (rows after the checkpoint from the killed run removed).
        #expect(try Self.trainingSteps(out.appendingPathComponent("metrics.jsonl")) == Array(1...steps))
        // The resumed incarnation trained steps 3…6: every prompt of them exactly once.
        let summary = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: out.appendingPathComponent("learner_summary.json"))) as? [String: Int])
        #expect(summary["completed_steps"] == steps)
        #expect(summary["weight_version"] == steps + 1)
        #expect(summary["prompts_trained"] == (steps - 2) * 4, "\(summary)")
        #expect(summary["prompts_trained_more_than_once"] == 0, "\(summary)")
        #expect(summary["accepted"] == (steps - 2) * 4, "\(summary)")
        #expect(second.out.contains("step \(steps)/\(steps)"))
        let bases = actor.err.components(separatedBy: "frozen base installed").count - 1
        if lora {
            #expect(bases == 2, "one frozen base per learner incarnation, got \(bases): \(actor.err.suffix(3000))")
        } else {
            #expect(bases == 0)
        }
    }

    /// Issue 15, the chaos flake: an actor suspended (SIGSTOP) past the heartbeat timeout is declared dead; the
    /// other actor trains every step and the learner exits. Before: the resumed actor was never told the run had
    /// finished and tried to reconnect forever (scripts/chaos --short failed about 1 run in 4). Now the learner sends
    /// the finish notice to declared-dead actors too, and an actor told "finished" leaves when the learner is gone.
    @Test func actorSuspendedWhileTheRunFinishesLeavesWhenResumed() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let port = Int.random(in: 20_000..<60_000)
        let bind = "tcp://127.0.0.1:\(port)"
        let learner = try Spawned(["learner", "--bind", bind, "--output-dir", d.appendingPathComponent("run").path,
                                   "--set", "steps=3", "--set", "eval_every=0", "--set", "prompts_per_step=4",
                                   "--set", "group_size=4", "--set", "max_new_tokens=16", "--set", "heartbeat_interval_ms=200",
                                   "--set", "heartbeat_timeout_ms=1500", "--set", "tensorboard=false"])
        defer { if learner.p.isRunning { kill(learner.p.processIdentifier, SIGKILL) } }
        let sleeper = try Spawned(["actor", "--learner", bind, "--id", "sleeper", "--threads", "1"])
        defer { if sleeper.p.isRunning { kill(sleeper.p.processIdentifier, SIGCONT); kill(sleeper.p.processIdentifier, SIGKILL) } }
        #expect(sleeper.waitFor("model configured", seconds: 60), "\(sleeper.err.suffix(2000))")
        kill(sleeper.p.processIdentifier, SIGSTOP)
        // The worker starts only once the sleeper is declared dead: three tiny steps can finish inside the
        // heartbeat timeout, and then the case under test (a declared-dead actor) never happens.
        #expect(learner.waitFor("actor sleeper missed its heartbeats: declared dead", seconds: 30), "\(learner.err.suffix(2000))")
        let worker = try Spawned(["actor", "--learner", bind, "--id", "worker", "--threads", "1"])
        defer { if worker.p.isRunning { kill(worker.p.processIdentifier, SIGKILL) } }

        let rc = learner.finish(seconds: 120)
        #expect(rc == 0, "learner: rc \(rc)\n\(learner.err.suffix(3000))")
        #expect(learner.err.contains("actor sleeper missed its heartbeats: declared dead"), "\(learner.err.suffix(3000))")
        #expect(learner.err.contains("also telling sleeper"), "\(learner.err.suffix(3000))")
        #expect(worker.finish(seconds: 30) == 0, "\(worker.err.suffix(2000))")

        // Resumed after the learner has exited: it reads the finish notice and leaves.
        kill(sleeper.p.processIdentifier, SIGCONT)
        let sleeperRC = sleeper.finish(seconds: 20)
        #expect(sleeperRC == 0, "suspended actor: rc \(sleeperRC)\n\(sleeper.err.suffix(3000))")
        #expect(sleeper.err.contains("learner: run finished"), "\(sleeper.err.suffix(3000))")
    }
    /// CI's chaos failure of 2026-12-03: the learner was SIGKILLed just after its last step, before it told the
    /// actors; resumed with nothing left to train, it exited at once, and the actors (which reconnect after their
    /// heartbeat timeout) waited for a learner forever. Now a resumed learner waits the heartbeat timeout (+1 s)
    /// for them; an actor that says hello in that window is told the run is over and leaves.
    @Test func learnerResumedAfterTheLastStepTellsActorsThatReconnect() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let port = Int.random(in: 20_000..<60_000)
        let bind = "tcp://127.0.0.1:\(port)"
        let learnerArgs = ["learner", "--bind", bind, "--output-dir", d.appendingPathComponent("run").path,
                           "--set", "steps=2", "--set", "eval_every=0", "--set", "prompts_per_step=4",
                           "--set", "group_size=4", "--set", "max_new_tokens=16", "--set", "heartbeat_interval_ms=200",
                           "--set", "heartbeat_timeout_ms=3000", "--set", "tensorboard=false"]
        let first = try Spawned(learnerArgs)
        defer { if first.p.isRunning { kill(first.p.processIdentifier, SIGKILL) } }
        let actor = try Spawned(["actor", "--learner", bind, "--id", "a1", "--threads", "1"])
        defer { if actor.p.isRunning { kill(actor.p.processIdentifier, SIGKILL) } }
        #expect(first.finish(seconds: 120) == 0, "\(first.err.suffix(2000))")
        #expect(actor.finish(seconds: 30) == 0, "\(actor.err.suffix(2000))")

        let second = try Spawned(learnerArgs + ["--resume"])
        defer { if second.p.isRunning { kill(second.p.processIdentifier, SIGKILL) } }
        #expect(second.waitFor("0 steps to go", seconds: 60), "\(second.err.suffix(2000))")
        let late = try Spawned(["actor", "--learner", bind, "--id", "a2", "--threads", "1"])
        defer { if late.p.isRunning { kill(late.p.processIdentifier, SIGKILL) } }
        let lateRC = late.finish(seconds: 30)
        #expect(lateRC == 0, "actor after the resumed learner started: rc \(lateRC)\n\(late.err.suffix(3000))")
        #expect(late.err.contains("learner: run finished"), "\(late.err.suffix(3000))")
        let rc = second.finish(seconds: 30)
        #expect(rc == 0, "resumed learner: rc \(rc)\n\(second.err.suffix(3000))")
        #expect(second.err.contains("actor a2 joined"), "\(second.err.suffix(3000))")
    }
}
