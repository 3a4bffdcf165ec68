import Foundation
import Learner
import Telemetry
import Testing
import TestSupport
@testable import Training

/// metrics.jsonl records (one schema in every mode, steps counting optimizer steps done) and the console's text.
@Suite struct RunRecordTests {
    static func json(_ r: some Encodable) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: MetricsLog.encoder().encode(r)) as! [String: Any]
    }

    @Test func stepRecordIsOneFlatObjectWithKindStepAndBothTimes() throws {
        var m = StepMetrics(step: 4)
        m.loss = 0.25; m.seconds = 2; m.trainedTokens = 100; m.rewardMean = .nan
        m.rollout.trainAccuracy = 0.5
        var stats = LearnerStepStats()
        stats.actors = 3
        let r = StepRecord(step: 5, metrics: m, sampleSeconds: 3, epoch: 1, learner: stats)
        let o = try Self.json(r)
        #expect(o["kind"] as? String == "train" && o["step"] as? Int == 5 && o["epoch"] as? Int == 1)
        #expect(o["step_seconds"] as? Double == 2 && o["sample_seconds"] as? Double == 3 && o["total_seconds"] as? Double == 5)
        #expect(o["train_tokens_per_second"] as? Double == 50 && o["loss"] as? Double == 0.25)
        #expect(o["reward_mean"] as? String == "nan")  // non-finite numbers stay valid JSON
        #expect(o["train_accuracy"] as? Double == 0.5 && o["actors"] as? Int == 3)
        #expect(o["refusal_reason"] == nil && o["sample_tokens_per_second"] == nil)
        // Every key is snake_case.
        #expect(o.keys.allSatisfy { $0 == $0.lowercased() && !$0.contains("-") }, "\(o.keys.sorted())")
    }

    @Test func evalRecordHasTheEvalKeysAtItsStep() throws {
        let items = [EvalReport.Item(id: "a", completion: "x", extracted: "1", reference: "1", correct: true, selfCertainty: 3, tokens: 4, truncated: false),
                     EvalReport.Item(id: "b", completion: "y", extracted: "2", reference: "1", correct: false, selfCertainty: 1, tokens: 6, truncated: true)]
        let o = try Self.json(EvalRecord(step: 20, report: EvalReport(items: items), seconds: 1.5))
        #expect(o["kind"] as? String == "eval" && o["step"] as? Int == 20 && o["eval_accuracy"] as? Double == 0.5)
        #expect(o["eval_count"] as? Int == 2 && o["eval_length"] as? Double == 5 && o["eval_seconds"] as? Double == 1.5)
        #expect(o["eval_self_certainty_auc"] as? Double == 1)
    }

    /// Files written before records had a kind still read: training rows were 0-based, and distributed runs merged
    /// the eval after a step into that step's row.
    @Test func oldRowsAreNormalizedToTheCurrentSchema() {
        let old: [[String: Any]] = [["kind": "eval", "step": 0, "eval_accuracy": 0.1],
                                    ["step": 0, "loss": 1.0],
                                    ["step": 1, "loss": 0.5, "eval_accuracy": 0.2, "eval_count": 8]]
        let rows = MetricsRows.normalized(old)
        let summary = rows.map { "\($0["kind"]!)@\($0["step"]!)" }
        #expect(summary == ["eval@0", "train@1", "train@2", "eval@2"])
        #expect(rows[2]["eval_accuracy"] == nil && rows[3]["eval_accuracy"] as? Double == 0.2 && rows[3]["loss"] == nil)
        // Current rows are left as they are.
        let new: [[String: Any]] = [["kind": "train", "step": 1, "loss": 1.0]]
        #expect(MetricsRows.normalized(new).first?["step"] as? Int == 1)
    }

    @Test func resumeKeepsCurrentRowsUpToTheCheckpointedStep() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let url = d.appendingPathComponent("metrics.jsonl")
        var text = "{\"kind\":\"eval\",\"step\":0}\n"
        for s in 1...12 { text += "{\"kind\":\"train\",\"step\":\(s)}\n" }
        text += "{\"kind\":\"eval\",\"step\":10}\n{\"kind\":\"eval\",\"step\":12}\n"
        try Data(text.utf8).write(to: url)
        _ = try MetricsLog(url: url, resumingAfter: 10)
        let rows = try MetricsRows.read(url)
        #expect(rows.filter { $0["kind"] as? String == "train" }.map { $0["step"] as! Int } == Array(1...10))
        #expect(rows.filter { $0["kind"] as? String == "eval" }.map { $0["step"] as! Int } == [0, 10])
    }

    /// A training run keeps each evaluation's items; the report draws the last one's right vs wrong histogram.
    @Test func reportUsesTheRunsLastEvalItems() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        try Data(#"{"kind":"train","step":1,"reward_mean":1}"#.utf8 + [10]).write(to: d.appendingPathComponent("metrics.jsonl"))
        func item(_ id: String, _ ok: Bool) -> EvalReport.Item {
            EvalReport.Item(id: id, completion: "c", extracted: nil, reference: "1", correct: ok, selfCertainty: ok ? 2 : 1, tokens: 3, truncated: false)
        }
        var c = TrainConfig()
        c.model = "m"
        try EvalItemsFile.saveTraining(output: d, step: 0, config: c, items: [item("a", false)])
        try EvalItemsFile.saveTraining(output: d, step: 12, config: c, items: [item("a", true), item("b", false)])
        #expect(EvalItemsFile.latestTraining(output: d)?.lastPathComponent == "step-000012.jsonl")
        let r = try RunReport.load(runDirectory: d)
        #expect(r.evalItems.map(\.id) == ["a", "b"])
        #expect(r.html.contains("Self-certainty of right (1) vs wrong (1) answers"))
        #expect(RunDirectory.runArtifacts(in: d).contains("eval"))
    }

    @Test func baselineItemsFilesStillRead() throws {
        // Items files committed before this change (results/baselines) decode with the current reader.
        let root = Fixtures.repoRoot
        let dir = root.appendingPathComponent("results/baselines")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".jsonl") }
        #expect(!files.isEmpty)
        for f in files {
            let got = try #require(try EvalItemsFile.read(dir.appendingPathComponent(f)))
            #expect(got.items.count == got.settings.limit, "\(f)")
        }
    }
}

@Suite struct ConsoleTests {
    static func sample(_ json: String) throws -> ProgressSample { try ProgressSample.decode(Data(json.utf8)) }

    @Test func stepLineShowsSamplingAndTrainingTime() throws {
        let s = try Self.sample(#"{"kind":"train","step":3,"reward_mean":0.5,"reward_std":0.1,"loss":"nan","sample_seconds":2.5,"step_seconds":1.25,"total_seconds":3.75,"trained_tokens":75}"#)
        let line = ProgressText.line(s, totalSteps: 10)
        #expect(line.hasPrefix("step 3/10  reward 0.5000 ±0.1000  loss -"))
        #expect(line.hasSuffix("sample 2.50s + train 1.25s"))
    }

    @Test func progressLineHasStepEtaThroughputRewardAndEval() throws {
        var p = ProgressText(totalSteps: 10)
        _ = p.add(try Self.sample(#"{"kind":"eval","step":0,"eval_accuracy":0.25}"#))
        #expect(p.etaSeconds == nil)
        _ = p.add(try Self.sample(#"{"kind":"train","step":1,"reward_mean":1,"total_seconds":4,"trained_tokens":40}"#))
        _ = p.add(try Self.sample(#"{"kind":"train","step":2,"reward_mean":2,"total_seconds":6,"trained_tokens":60}"#))
        #expect(p.etaSeconds == 40)  // 5 s/step × 8 left
        #expect(p.tokensPerSecond == 10)
        let status = p.status
        #expect(status.contains("step 2/10") && status.contains("ETA 40s") && status.contains("10 tok/s"))
        #expect(status.contains("reward 2.0000") && status.contains("eval acc 0.250 @ 0"))
        let eval = ProgressText.line(try Self.sample(#"{"kind":"eval","step":20,"eval_accuracy":0.5,"eval_accuracy_low":0.4,"eval_accuracy_high":0.6}"#), totalSteps: 40)
        #expect(eval.hasPrefix("eval @ step 20: accuracy 0.500 (95% CI 0.400–0.600)"))
        #expect(ProgressText.duration(3725) == "1h02m" && ProgressText.duration(185) == "3m05s")
    }

    @Test func plainConsoleWritesOnlyLines() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let url = d.appendingPathComponent("out")
        FileManager.default.createFile(atPath: url.path, contents: nil)
        let h = try FileHandle(forWritingTo: url)
        let c = Console(totalSteps: 2, live: false, out: h, err: h)
        c.record(Data(#"{"kind":"train","step":1,"total_seconds":1}"#.utf8))
        c.log(Data("a log line\n".utf8))
        c.finish()
        try h.close()
        let text = try String(contentsOf: url, encoding: .utf8)
        #expect(!text.contains("\u{1B}") && !text.contains("\r"))
        #expect(text.hasPrefix("step 1/2") && text.hasSuffix("a log line\n"))
    }

    @Test func liveConsoleKeepsTheProgressLineUnderTheLines() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let url = d.appendingPathComponent("out")
        FileManager.default.createFile(atPath: url.path, contents: nil)
        let h = try FileHandle(forWritingTo: url)
        let c = Console(totalSteps: 4, live: true, out: h, err: h)
        c.record(Data(#"{"kind":"train","step":1,"total_seconds":2}"#.utf8))
        c.log(Data("log\n".utf8))
        c.finish()
        try h.close()
        let text = try String(contentsOf: url, encoding: .utf8)
        // line, progress line drawn; cleared before the log line, drawn again; cleared at the end.
        let clear = "\r\u{1B}[2K"
        #expect(text.hasPrefix("step 1/4"))
        #expect(text.contains(clear + "[#####...............] step 1/4  ETA 6s"))
        #expect(text.contains(clear + "log\n" + clear + "[#####"))
        #expect(text.hasSuffix(clear))
    }
}

@Suite struct LearnerStatusTests {
    @Test func actorBoardTracksHostVersionSpeedBytesAndSilence() {
        var b = ActorBoard()
        b.hello(id: "a", host: "h1", pid: 7, version: 0, now: 1000)
        b.hello(id: "b", host: "h2", pid: 8, version: 0, now: 1000)
        b.sent(id: "a", bytes: 300)
        b.accepted(id: "a", version: 2, tokens: 50, decodeMs: 500, now: 2000)
        b.heard(id: "b", version: 3, now: 2500)
        b.left(id: "b")
        let rows = b.rows(ids: ["a", "c"], tasksHeld: { $0 == "a" ? 2 : 0 }, now: 4000)
        #expect(rows.map(\.id) == ["a", "c"])
        #expect(rows[0].host == "h1" && rows[0].pid == 7 && rows[0].weightVersion == 2 && rows[0].tokensPerSecond == 100)
        #expect(rows[0].tasksHeld == 2 && rows[0].groupsAccepted == 1 && rows[0].bytesSent == 300 && rows[0].lastHeardSecondsAgo == 2)
        #expect(b.bytesSent == 300)
    }
}
