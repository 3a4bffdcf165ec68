import Foundation
import Logging
import Sampling
import Testing
import TestSupport
@testable import Training

/// Issue 15's rows that live in the Training library: output directories keep data, config values are checked by
/// their own key, over-long prompts are skipped at load, and a stop request ends a single-process run at a step
/// boundary with a checkpoint. Each of these failed on the code before (noted per test).
@Suite struct RunDirectoryTests {
    func touch(_ dir: URL, _ name: String, _ text: String = "x") throws {
        try Data(text.utf8).write(to: dir.appendingPathComponent(name))
    }

    @Test func emptyOrNewDirectoryStartsFresh() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        #expect(try RunDirectory.prepare(output: d, resume: false, overwrite: false) == .fresh)
        let sub = d.appendingPathComponent("new/run")
        #expect(try RunDirectory.prepare(output: sub, resume: false, overwrite: false) == .fresh)
        #expect(FileManager.default.fileExists(atPath: sub.path))
        // Files rlif does not own don't make a directory "a run".
        try touch(d, "notes.txt")
        try touch(d, "train_config.json")
        #expect(try RunDirectory.prepare(output: d, resume: false, overwrite: false) == .fresh)
    }

    /// Before: a rerun into an existing output dir overwrote metrics.jsonl silently.
    @Test func existingRunIsRefusedWithoutResumeOrOverwrite() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        try touch(d, "metrics.jsonl", "{\"step\":0}\n")
        #expect {
            try RunDirectory.prepare(output: d, resume: false, overwrite: false)
        } throws: { e in
            let m = "\(e)"
            return m.contains(d.path) && m.contains("metrics.jsonl") && m.contains("--resume") && m.contains("--overwrite")
        }
        #expect(try String(contentsOf: d.appendingPathComponent("metrics.jsonl"), encoding: .utf8) == "{\"step\":0}\n")
    }

    @Test func overwriteRemovesOnlyTheRunsFiles() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        try touch(d, "metrics.jsonl")
        try touch(d, "latest", "checkpoint-000002")
        try FileManager.default.createDirectory(at: d.appendingPathComponent("checkpoint-000002"), withIntermediateDirectories: true)
        try touch(d, "mine.txt")
        #expect(try RunDirectory.prepare(output: d, resume: false, overwrite: true) == .fresh)
        let left = try FileManager.default.contentsOfDirectory(atPath: d.path)
        #expect(left == ["mine.txt"])
    }

    /// Before: `--resume` with no checkpoint silently started from scratch.
    @Test func resumeWithoutCheckpointIsAnError() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        #expect { try RunDirectory.prepare(output: d, resume: true, overwrite: false) } throws: { e in
            "\(e)".contains("no checkpoint") && "\(e)".contains(d.path)
        }
        #expect(throws: RunDirectoryError.self) { try RunDirectory.prepare(output: d, resume: true, overwrite: true) }
    }

    @Test func readOnlyParentGivesOneLineReason() throws {
        // As root the permission bits don't stop us: use a path under a regular file instead.
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        try touch(d, "file")
        #expect { try RunDirectory.prepare(output: d.appendingPathComponent("file/run"), resume: false, overwrite: false) } throws: { e in
            let m = "\(e)"
            return m.contains("file/run") && !m.contains("NSCocoaErrorDomain") && !m.contains("\n")
        }
    }
}

@Suite struct MetricsResumeTests {
    /// Before: after a resume metrics.jsonl held steps 0…11, 10, 11 (rows from before the kill kept).
    @Test func rowsPastTheCheckpointAreRemovedOnResume() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let url = d.appendingPathComponent("metrics.jsonl")
        var text = "{\"kind\":\"eval\",\"step\":0}\n"
        for s in 0..<12 { text += "{\"step\":\(s)}\n" }
        text += "{\"kind\":\"eval\",\"step\":10}\n{\"kind\":\"eval\",\"step\":12}\n{\"step\":12,\"lo"  // torn last line
        try Data(text.utf8).write(to: url)
        let log = try MetricsLog(url: url, resumingAfter: 10)
        try log.append(["step": 10] as [String: Int])
        let rows = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        let steps = rows.filter { $0["kind"] == nil }.map { $0["step"] as! Int }
        let evals = rows.filter { $0["kind"] != nil }.map { $0["step"] as! Int }
        #expect(steps == Array(0...10))
        #expect(evals == [0, 10])
    }

    @Test func freshStartTruncates() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let url = d.appendingPathComponent("metrics.jsonl")
        try Data("{\"step\":0}\n".utf8).write(to: url)
        _ = try MetricsLog(url: url, resumingAfter: 0)
        #expect(try Data(contentsOf: url).isEmpty)
    }
}

@Suite struct ConfigValueTests {
    func rejects(_ sets: [String], key: String, _ text: String? = nil) {
        #expect {
            try TrainConfig().overriding(sets)
        } throws: { e in
            guard let c = e as? ConfigError else { return false }
            return c.key == key && (text.map { c.message.contains($0) } ?? true)
        }
    }

    /// Before: `kl_beta=1e39` gave a JSON decoding error not naming the key.
    @Test func outOfRangeNumberNamesItsKey() { rejects(["kl_beta=1e39"], key: "kl_beta") }

    /// Before: `.inf` passed validation and failed later inside PolicyLossConfig; `.nan` said "must be >= 0".
    @Test func nonFiniteNumbersAreRefusedByKey() throws {
        rejects(["kl_beta=.inf"], key: "kl_beta", "finite")
        rejects(["learning_rate=.nan"], key: "learning_rate", "finite")
        #expect(throws: ConfigError.self) { try TrainConfig.load(yaml: "kl_beta: .inf\n", source: "run.yaml") }
    }

    /// Before: temperature 0 trained with gradient 0 for the whole run, no warning.
    @Test func zeroTemperatureIsRefusedForTraining() { rejects(["temperature=0"], key: "temperature", "> 0") }

    /// Before: a bogus name became the literal system prompt (accuracy 0.315 → 0.050).
    @Test func unknownSystemPromptNameSuggestsTheNearest() throws {
        rejects(["system_prompt=maht"], key: "system_prompt", "did you mean 'math'")
        // Literal text still works.
        let c = try TrainConfig().overriding(["system_prompt=You are a careful solver."])
        #expect(c.systemPrompt == "You are a careful solver.")
        #expect(try TrainConfig().overriding(["system_prompt=intuitor-recipe"]).systemPrompt == "intuitor-recipe")
    }

    /// Before: `--set stepz=1` said "unknown key" with no suggestion (the YAML path had one).
    @Test func unknownSetKeySuggestsTheNearest() { rejects(["stepz=1"], key: "stepz", "did you mean 'steps'") }

    @Test func otherRanges() {
        rejects(["eval_limit=0"], key: "eval_limit")
        rejects(["checkpoint_every=-1"], key: "checkpoint_every")
        rejects(["max_prompt_tokens=-1"], key: "max_prompt_tokens")
        rejects(["actor_batch_sequences=0"], key: "actor_batch_sequences")
    }
}

@Suite struct PromptLengthTests {
    /// Before: a prompt longer than the context went to the actors, failed there and was re-issued forever.
    @Test func longPromptsAreSkippedAndNamed() throws {
        let records = (0..<5).map { PromptRecord(id: "train:\($0 + 1)", text: String(repeating: "x", count: $0 == 3 ? 500 : 10), answer: nil) }
        let ds = PromptDataset(records: records, seed: 1, source: "train.jsonl")
        let (kept, skipped, longest) = try ds.keeping(maxTokens: 100) { $0.text.count }
        #expect(kept.count == 4)
        #expect(longest == 10)
        #expect(skipped.map(\.record.id) == ["train:4"])
        #expect(skipped.map(\.tokens) == [500])
        #expect(throws: DatasetError.self) { try ds.keeping(maxTokens: 5) { $0.text.count } }
    }
}

@Suite(.serialized) struct StopRequestTests {
    /// Before: Ctrl-C in `rlif train --single-process` was ignored (all steps ran, exit 0) and SIGTERM killed it
    /// with no checkpoint. Now a stop request ends the run after the step in flight, with a checkpoint of it.
    @Test func stopFlagEndsAtAStepBoundaryWithACheckpoint() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let model = try ResumeTests.makeModel(in: d)
        var c = ResumeTests.config(model: model, output: d.appendingPathComponent("out"))
        c.checkpointEvery = 0  // only at the end: the stop must write its own
        let run = try ResumeTests.makeRun(c)
        var seen = 0
        let outcome = try run.run { rec in
            if case .train = rec { seen += 1; if seen == 1 { run.stopFlag.set(signal: SIGINT) } }
        }
        #expect(outcome == .stopped(completedSteps: 1))
        #expect(run.stopFlag.exitStatus == 130)
        let latest = try Checkpointing.latest(in: URL(fileURLWithPath: c.outputDir))
        #expect(latest?.lastPathComponent == Checkpointing.directoryName(step: 1))
        // And it resumes from there to the end.
        let again = try ResumeTests.makeRun(c)
        #expect(try again.resume())
        #expect(try again.run() == .finished)
        #expect(try ResumeTests.records(URL(fileURLWithPath: c.outputDir)).keys.sorted() == [0, 1, 2, 3])
    }
}

@Suite struct RolloutStatsTests {
    static func completion(_ n: Int, sc: Float, entropy: Float? = nil, truncated: Bool = false) -> SampledCompletion {
        SampledCompletion(tokens: [Int32](repeating: 3, count: n), logprobs: [Float](repeating: -1, count: n),
                          selfCertainty: [Float](repeating: sc, count: n),
                          entropy: entropy.map { [Float](repeating: $0, count: n) } ?? [],
                          finishReason: truncated ? .length : .stop)
    }

    @Test func statsOfTwoGroups() throws {
        var a = TrainingGroup(promptId: "a", promptTokens: [1], completions: [Self.completion(2, sc: 1, entropy: 0.5),
                                                                              Self.completion(4, sc: 3, entropy: 1.5)],
                              rewards: [0, 0], weightVersion: 1)
        a.correct = [true, false]
        let b = TrainingGroup(promptId: "b", promptTokens: [1], completions: [Self.completion(6, sc: 5, truncated: true),
                                                                              Self.completion(8, sc: 5)],
                              rewards: [0, 0], weightVersion: 1)
        let s = RolloutStats(groups: [a, b])
        // Group stds: a → 1 (population std of {1, 3}), b → 0; mean 0.5.
        #expect(abs(s.selfCertaintyGroupStd - 0.5) < 1e-12)
        #expect(s.selfCertaintyMin == 1 && s.selfCertaintyMax == 5)
        // Entropy over the tokens that have it: (2·0.5 + 4·1.5) / 6.
        #expect(abs(s.entropyMean! - 7.0 / 6) < 1e-12)
        #expect(s.truncatedFraction == 0.25)
        #expect(s.lengthMin == 2 && s.lengthMax == 8)
        #expect(s.trainAccuracy == 0.5)
        #expect(RolloutStats(groups: [b]).trainAccuracy == nil)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(s)) as! [String: Any]
        #expect(json["train_accuracy"] as? Double == 0.5 && json["self_certainty_group_std"] as? Double == 0.5)
    }
}

@Suite(.serialized) struct TISEpochTests {
    /// Issue 18's bug: with tis_cap > 0 and several updates per step, old log-probs were taken from the current
    /// weights at every minibatch, so the ratio was exactly 1 and clipping never acted. Now they are taken once
    /// before the first update: the second epoch sees the first epoch's change (ratio ≠ 1).
    @Test func secondEpochRatioIsAgainstTheWeightsBeforeTheStep() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let model = try ResumeTests.makeModel(in: d)
        var c = ResumeTests.config(model: model, output: d.appendingPathComponent("out"))
        c.steps = 1
        c.tisCap = 2
        c.ppoEpochs = 2
        c.learningRate = 5e-2
        c.warmupRatio = 0
        c.lrSchedule = .constant
        c.maxGradNorm = 0
        let run = try ResumeTests.makeRun(c)
        var step: StepRecord?
        try run.run { if case .train(let r) = $0 { step = r } }
        let ratio = try #require(step?.metrics.meanRatio)
        let clip = try #require(step?.metrics.clipFraction)
        // Mean over both epochs: epoch 1 contributes exactly 1, epoch 2 a visibly different ratio.
        #expect(abs(ratio - 1) > 1e-4 || clip > 0, "ratio_mean \(ratio) clip \(clip)")
    }
}

@Suite(.serialized) struct RescoreTests {
    /// The learner's re-scoring of a group (fused-head forward over prompt + completion) gives what the sampler
    /// recorded while decoding the same tokens with the same weights: so a stale group re-scored with current
    /// weights carries the current policy's self-certainty, and an on-policy one is unchanged.
    @Test func rescoringWithTheSamplingWeightsReproducesTheSamplersNumbers() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let model = try ResumeTests.makeModel(in: d)
        let c = ResumeTests.config(model: model, output: d.appendingPathComponent("out"))
        let run = try ResumeTests.makeRun(c)
        let prompt = run.formatter.encode(run.dataset.records[0].text)
        let params = SamplingParameters(temperature: c.temperature, maxNewTokens: 12)
        let g = try GroupedSampler.sample([GroupRequest(promptTokens: prompt, groupSize: 3, parameters: params, seed: 9)],
                                          on: run.trainer.policy, maxBatchSequences: 4)[0]
        var garbled = g.completions
        for i in garbled.indices {
            garbled[i].selfCertainty = garbled[i].selfCertainty.map { _ in 50 }
            garbled[i].logprobs = garbled[i].logprobs.map { _ in 0 }
        }
        let again = try run.trainer.rescore(prompt: prompt, completions: garbled)
        for (a, b) in zip(again, g.completions) {
            #expect(a.tokens == b.tokens)
            expectClose(a.selfCertainty, b.selfCertainty, atol: 1e-4, rtol: 1e-4, "self-certainty")
            expectClose(a.logprobs, b.logprobs, atol: 1e-4, rtol: 1e-4, "logprobs")
            if b.entropy.count == b.tokens.count { expectClose(a.entropy, b.entropy, atol: 1e-4, rtol: 1e-4, "entropy") }
        }
    }

    @Test func modes() throws {
        #expect(RecomputeMode.auto.applies(sampled: 3, current: 4))
        #expect(!RecomputeMode.auto.applies(sampled: 4, current: 4))
        #expect(RecomputeMode.always.applies(sampled: 4, current: 4))
        #expect(!RecomputeMode.never.applies(sampled: 1, current: 4))
        #expect(try TrainConfig().overriding(["recompute_self_certainty=always"]).recomputeSelfCertainty == .always)
        #expect(throws: ConfigError.self) { try TrainConfig().overriding(["recompute_self_certainty=sometimes"]) }
    }
}

@Suite struct EvalReportTests {
    static func item(_ id: String, _ ok: Bool, _ sc: Float, truncated: Bool = false) -> EvalReport.Item {
        .init(id: id, completion: "", extracted: nil, reference: nil, correct: ok, selfCertainty: sc, tokens: 10,
              truncated: truncated)
    }

    @Test func intervalsAndEffectSize() {
        // Wilson 95% for 3/16: 0.0659–0.4301 (hand-computed, z = 1.959964).
        let (lo, hi) = EvalReport.wilson(3, 16)
        #expect(abs(lo - 0.0659) < 5e-4 && abs(hi - 0.4301) < 5e-4)
        // Right answers {3, 4} vs wrong {1, 2}: U = 4 of 4 pairs, Z = (4 − 2)/√(4·5/12), r = Z/√4.
        let r = EvalReport(items: [Self.item("a", true, 3), Self.item("b", true, 4), Self.item("c", false, 1),
                                   Self.item("d", false, 2, truncated: true)])
        #expect(r.selfCertaintyAUC == 1)
        #expect(abs(r.selfCertaintyEffectR! - (2 / (20.0 / 12).squareRoot()) / 2) < 1e-12)
        #expect(r.truncatedFraction == 0.25)
        // Ties count half: {1, 2} vs {2, 3} → U = 0.5 of 4 pairs... from the right side: pairs (1,2)(1,3)(2,2)(2,3) → 0.5.
        let t = EvalReport(items: [Self.item("a", true, 1), Self.item("b", true, 2), Self.item("c", false, 2), Self.item("d", false, 3)])
        #expect(t.selfCertaintyAUC == 0.5 / 4)
        #expect(EvalReport(items: [Self.item("a", true, 1)]).selfCertaintyAUC == nil)
    }
}

@Suite struct EvalItemsFileTests {
    let settings = EvalItemsFile.Settings(model: "m", data: "d.jsonl", format: "math", limit: 10, maxNewTokens: 64,
                                          template: "auto", systemPrompt: "math")

    @Test func resumesWithTheSameSettingsAndRefusesOthers() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let url = d.appendingPathComponent("items.jsonl")
        let (f, none) = try EvalItemsFile.open(url, settings: settings)
        #expect(none.isEmpty)
        try f.append([EvalReportTests.item("q1", true, 1.5), EvalReportTests.item("q2", false, 2.25)])
        // A kill mid-write leaves a torn line: dropped on resume.
        let h = try FileHandle(forWritingTo: url)
        try h.seekToEnd(); try h.write(contentsOf: Data("{\"id\":\"q3\",\"comp".utf8)); try h.close()
        let (g, done) = try EvalItemsFile.open(url, settings: settings)
        #expect(done.map(\.id) == ["q1", "q2"])
        #expect(done[1].selfCertainty == 2.25)
        try g.append([EvalReportTests.item("q3", true, 1)])
        #expect(try EvalItemsFile.open(url, settings: settings).1.map(\.id) == ["q1", "q2", "q3"])
        var other = settings
        other.maxNewTokens = 512
        #expect(throws: DatasetError.self) { try EvalItemsFile.open(url, settings: other) }
    }
}

@Suite struct RunReportTests {
    @Test func pageHasAChartPerRecordedSeriesAndEscapesText() throws {
        var rows: [[String: Any]] = [["kind": "eval", "step": 0, "eval_accuracy": 0.25]]
        for s in 0..<5 {
            rows.append(["step": s, "reward_mean": 1.0 + Double(s), "self_certainty": 2.0, "kl": 0.001 * Double(s),
                         "response_length": 30.0, "lr": 1e-5, "train_tokens_per_second": 100.0])
        }
        rows.append(["kind": "eval", "step": 5, "eval_accuracy": 0.5])
        let items = [EvalReportTests.item("a", true, 3), EvalReportTests.item("b", false, 1)]
        let r = RunReport(rows: rows, configJSON: "{\"system_prompt\": \"<b>\"}", evalItems: items, title: "run<1>")
        let html = r.html
        #expect(html.hasPrefix("<!doctype html>"))
        #expect(html.contains("Reward (mean over completions)"))
        #expect(html.contains("Held-out accuracy"))
        #expect(html.contains("Self-certainty of right (1) vs wrong (1) answers"))
        #expect(!html.contains("<b>") && html.contains("&lt;b&gt;") && html.contains("run&lt;1&gt;"))
        #expect(!html.contains("<script"))
        // Training steps are drawn 1-based (as the console prints them), eval points at their recorded step.
        #expect(r.points("reward_mean").map(\.0) == [1, 2, 3, 4, 5])
        #expect(r.points("eval_accuracy", eval: true).map(\.0) == [0, 5])
        // No chart for series that were never recorded.
        #expect(html.contains("Learning rate"))
        #expect(r.svgFiles.map(\.0).contains("self-certainty-right-vs-wrong.svg"))
        #expect(RunReport(rows: [["step": 0, "loss": 1.0]], title: "x").svgFiles.isEmpty)
        let t = RunReport.ticks(0, 1)
        #expect(t.count == 6 && t.first == 0 && abs(t.last! - 1) < 1e-12)
    }
}

@Suite struct PresetTests {
    @Test func intuitorPresetGivesTheOfficialRecipeAndTheFileOverridesIt() throws {
        let c = try TrainConfig.load(yaml: "preset: intuitor\nmodel: m\nprompts: p.jsonl\nmax_new_tokens: 256\nprompts_per_step: 4\n",
                                     source: "run.yaml")
        #expect(c.preset == .intuitor)
        #expect(c.systemPrompt == "intuitor-recipe" && c.template == .auto)
        #expect(c.learningRate == 3e-6 && c.lrSchedule == .cosine && c.warmupRatio == 0.1)
        #expect(c.klBeta == 0.005 && c.clipEpsilonLow == 0.2 && c.clipEpsilonHigh == 0.2 && c.maxGradNorm == 1)
        #expect(c.temperature == 0.9 && c.groupSize == 8 && c.maxPromptTokens == 512)
        // The file's keys win over the preset's.
        #expect(c.maxNewTokens == 256 && c.promptsPerStep == 4)
        let full = try TrainConfig.load(yaml: "preset: intuitor\n", source: "run.yaml")
        #expect(full.maxNewTokens == 3072 && full.promptsPerStep == 128)
        // --set on top keeps the preset's values and the file's.
        let s = try c.overriding(["seed=3"])
        #expect(s.maxNewTokens == 256 && s.systemPrompt == "intuitor-recipe" && s.seed == 3)
        #expect(throws: ConfigError.self) { try TrainConfig.load(yaml: "preset: intuitr\n", source: "run.yaml") }
    }
}

@Suite(.serialized) struct OfflineSelfCertaintyTests {
    /// `self_certainty_source: reference` (the offline ablation): rewards are the frozen initial model's
    /// self-certainty of the sampled completions, not the moving policy's, and the behaviour log-probs stay the
    /// sampler's. After an update the two sources differ; before any, they agree.
    @Test func rewardsComeFromTheFrozenInitialModel() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let model = try ResumeTests.makeModel(in: d)
        var c = ResumeTests.config(model: model, output: d.appendingPathComponent("out"))
        c.selfCertaintySource = .reference
        c.klBeta = 0
        c.learningRate = 5e-2
        c.warmupRatio = 0
        c.lrSchedule = .constant
        let run = try ResumeTests.makeRun(c)  // makes a reference copy of the initial weights
        let trainer = run.trainer
        #expect(trainer.reference == nil && trainer.frozenRewardModel != nil)
        let prompt = run.formatter.encode(run.dataset.records[0].text)
        let params = SamplingParameters(temperature: 1, maxNewTokens: 10)
        let g = try GroupedSampler.sample([GroupRequest(promptTokens: prompt, groupSize: 3, parameters: params, seed: 4)],
                                          on: trainer.policy, maxBatchSequences: 4)[0]
        // Same weights so far: the frozen model's numbers are the sampler's.
        let before = try trainer.rewardFeatures(prompt: prompt, completions: g.completions)
        for (a, b) in zip(before, g.completions) { expectClose(a.selfCertainty, b.selfCertainty, atol: 1e-4, rtol: 1e-4, "sc") }
        // Move the policy; the frozen model's self-certainty must not move with it.
        _ = try run.run()
        let after = try trainer.rewardFeatures(prompt: prompt, completions: g.completions)
        for (a, b) in zip(after, before) {
            #expect(a.selfCertainty == b.selfCertainty)
            #expect(a.logprobs == b.logprobs)
        }
        let fromPolicy = try trainer.rescore(prompt: prompt, completions: g.completions)
        #expect(zip(fromPolicy, after).contains { p, f in zip(p.selfCertainty, f.selfCertainty).contains { abs($0 - $1) > 1e-3 } })
    }
}

@Suite struct EvalItemsRewriteTests {
    @Test func rewriteStoresCurrentScoresAndStillResumes() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let url = d.appendingPathComponent("items.jsonl")
        let settings = EvalItemsFileTests().settings
        let (f, _) = try EvalItemsFile.open(url, settings: settings)
        try f.append([EvalReportTests.item("q1", false, 1.5)])
        try EvalItemsFile.rewrite(url, settings: settings, items: [EvalReportTests.item("q1", true, 1.5)])
        let (_, back) = try EvalItemsFile.open(url, settings: settings)
        #expect(back.map(\.id) == ["q1"] && back[0].correct)
    }
}
