import Foundation
import GRPO
import Testing
import TestSupport
@testable import Training

/// Config modes are Codable enums, decoded once when the YAML (or `--set`) is read; prompt lines are typed records.
@Suite struct ConfigModeTests {
    @Test func modesAreDecodedOnceAndRoundTrip() throws {
        let c = try TrainConfig.load(yaml: """
            lr_schedule: linear
            loss_aggregation: "constant:37"
            weight_dtype: bf16
            recompute_self_certainty: always
            """, source: "m.yaml")
        #expect(c.lrSchedule == .linear && c.weightDType == .bf16 && c.recomputeSelfCertainty == .always)
        #expect(c.lossAggregation == .constantNormalizer(37))
        // Through --set (which re-encodes the whole config as YAML): every mode survives the round trip.
        let d = try c.overriding(["loss_aggregation=seq_mean_token_sum", "lr_schedule=constant"])
        #expect(d.lossAggregation == .seqMeanTokenSum && d.lrSchedule == .constant && d.weightDType == .bf16)
        #expect(try c.overriding(["seed=3"]).lossAggregation == .constantNormalizer(37))
        for (yaml, key, says) in [("weight_dtype: fp16", "weight_dtype", "must be f32 or bf16, got 'fp16'"),
                                  ("lr_schedule: step", "lr_schedule", "must be cosine, linear or constant"),
                                  ("loss_aggregation: \"constant:-1\"", "loss_aggregation", "constant:<number > 0>"),
                                  ("loss_aggregation: \"constant:x\"", "loss_aggregation", "got 'constant:x'"),
                                  ("self_certainty_source: frozen", "self_certainty_source", "must be policy or reference")] {
            #expect {
                try TrainConfig.load(yaml: yaml, source: "m.yaml")
            } throws: { e in
                guard let e = e as? ConfigError else { return false }
                return e.key == key && e.message.contains(says)
            }
        }
        // The schedule the trainer builds from the mode.
        #expect(LRScheduleChoice.cosine.kind(minLRRatio: 0.1) == .cosine(numCycles: 0.5, minLRRatio: 0.1))
        #expect(LossAggregation(configName: LossAggregation.constantNormalizer(2.5).configName) == .constantNormalizer(2.5))
    }

    /// `answer` and `id` may be numbers (kept as written) but not booleans; a line of another shape names its line.
    @Test func promptLinesAreTyped() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("n.jsonl")
        try "{\"question\": \"2+2?\", \"answer\": 4}\n{\"prompt\": \"x\", \"answer\": 2.5, \"id\": \"a\"}\n"
            .write(to: good, atomically: true, encoding: .utf8)
        let ds = try PromptDataset(contentsOf: good, seed: 0)
        #expect(ds.records.map(\.answer) == ["4", "2.5"] && ds.records.map(\.id) == ["n:1", "a"])
        for (text, line, says) in [("{\"prompt\": \"x\", \"answer\": true}\n", 1, "\"answer\" must be a string or number"),
                                   ("{\"prompt\": \"x\"}\n[1]\n", 2, "expected a JSON object"),
                                   ("\n{\"prompt\": \"x\"\n", 2, "not valid JSON")] {
            let bad = dir.appendingPathComponent("bad.jsonl")
            try text.write(to: bad, atomically: true, encoding: .utf8)
            #expect {
                try PromptDataset(contentsOf: bad, seed: 0)
            } throws: { e in
                guard let e = e as? DatasetError else { return false }
                return e.line == line && e.message.contains(says)
            }
        }
    }
}
