import Testing
import TestSupport
@testable import GRPO

@Suite struct RewardsTests {
    static func completion(_ sc: [Float], entropy: [Float]? = nil, text: String? = nil) -> CompletionFeatures {
        CompletionFeatures(tokens: (0..<sc.count).map { Int32($0 + 10) }, selfCertainty: sc, entropy: entropy, text: text)
    }

    @Test func selfCertaintyIsTokenMean() throws {
        let g = [Self.completion([1, 2, 3]), Self.completion([0.5]), Self.completion([4, 0])]
        let r = try SelfCertaintyReward().rewards(group: g, context: RewardContext())
        expectClose(r, [2, 0.5, 2], atol: 1e-7, rtol: 0, "self-certainty")
        #expect(throws: RewardError.emptyCompletion(reward: "self_certainty", index: 1)) {
            try SelfCertaintyReward().rewards(group: [Self.completion([1]), Self.completion([])], context: RewardContext())
        }
        let mismatched = CompletionFeatures(tokens: [1, 2], selfCertainty: [1])
        #expect(throws: RewardError.self) { try SelfCertaintyReward().rewards(group: [mismatched], context: RewardContext()) }
        #expect(throws: RewardError.self) {
            try SelfCertaintyReward().rewards(group: [Self.completion([1, .nan])], context: RewardContext())
        }
    }

    @Test func rentIsNegativeMeanEntropy() throws {
        let g = [Self.completion([0, 0], entropy: [1, 3]), Self.completion([0], entropy: [0.25])]
        expectClose(try NegativeEntropyReward().rewards(group: g, context: RewardContext()), [-2, -0.25],
                    atol: 1e-7, rtol: 0, "RENT")
        #expect(throws: RewardError.missingFeature(reward: "rent", index: 0, feature: "entropy")) {
            try NegativeEntropyReward().rewards(group: [Self.completion([1])], context: RewardContext())
        }
    }

    @Test func accuracyUsesInjectedChecker() throws {
        let reward = AccuracyReward { text, ref in text.hasSuffix(ref) }
        let g = ["so 42", "so 41", "42"].map { Self.completion([1], text: $0) }
        #expect(try reward.rewards(group: g, context: RewardContext(reference: "42")) == [1, 0, 1])
        #expect(throws: RewardError.missingReference(reward: "accuracy")) {
            try reward.rewards(group: g, context: RewardContext())
        }
        #expect(throws: RewardError.missingFeature(reward: "accuracy", index: 0, feature: "text")) {
            try reward.rewards(group: [Self.completion([1])], context: RewardContext(reference: "42"))
        }
    }

    @Test func majorityVoteWithDeterministicTies() throws {
        // Answer = last word; "none" means no answer extracted.
        let reward = MajorityVoteReward { text in
            let last = String(text.split(separator: " ").last ?? "")
            return last == "none" ? nil : last
        }
        let g = ["a 3", "b 5", "c 3", "d none", "e 5", "f 3"].map { Self.completion([1], text: $0) }
        #expect(try reward.rewards(group: g, context: RewardContext()) == [1, 0, 1, 0, 0, 1])
        // Tie 2–2 between "7" and "9": "9" occurs first → wins.
        let tie = ["x 9", "x 7", "x 7", "x 9"].map { Self.completion([1], text: $0) }
        #expect(try reward.rewards(group: tie, context: RewardContext()) == [1, 0, 0, 1])
        #expect(reward.majorityAnswer(["7", "9", "9", "7"]) == "7")
        // No answers at all → all zero.
        let none = ["x none", "y none"].map { Self.completion([1], text: $0) }
        #expect(try reward.rewards(group: none, context: RewardContext()) == [0, 0])
    }

    /// The official form: z(self-certainty) + z(Σ w_k r_k) over the external rewards (issue 12; rlif used to
    /// z-score every component separately, which this test now tells apart with two external rewards).
    @Test func weightedMixIsSelfCertaintyPlusNormalisedExternalSum() throws {
        let g = [Self.completion([1], text: "a 1"), Self.completion([2], text: "b 2"), Self.completion([6], text: "c 1")]
        let acc = AccuracyReward { text, ref in text.hasSuffix(ref) }
        let startsB = AccuracyReward { text, _ in text.hasPrefix("b") }
        let mix = WeightedMixReward(components: [(SelfCertaintyReward(), 1.0), (acc, 0.5), (startsB, 2.0)])
        let r = try mix.rewards(group: g, context: RewardContext(reference: "1"))
        // self-certainty [1,2,6]: mean 3, unbiased std √7. External sum 0.5·[1,0,1] + 2·[0,1,0] = [0.5, 2, 0.5]:
        // mean 1, unbiased std √((0.25+1+0.25)/2) = √0.75.
        let s1 = 7.0.squareRoot(), s2 = 0.75.squareRoot()
        let expected = zip([1.0, 2, 6], [0.5, 2, 0.5]).map { sc, e in (sc - 3) / (s1 + 1e-6) + (e - 1) / (s2 + 1e-6) }
        expectClose(r, expected, atol: 1e-6, rtol: 1e-6, "mix")
        // Per-component z-scores (the old form) differ here.
        let old = zip(zip([1.0, 2, 6], [1.0, 0, 1]), [0.0, 1, 0]).map { p, b in
            (p.0 - 3) / s1 + 0.5 * (p.1 - 2.0 / 3) / (1.0 / 3).squareRoot() + 2 * (b - 1.0 / 3) / (1.0 / 3).squareRoot()
        }
        #expect(zip(r, old).contains { abs(Double($0) - $1) > 1e-3 })
        // Self-certainty alone keeps its weight.
        let solo = try WeightedMixReward(components: [(SelfCertaintyReward(), 2.0)]).rewards(group: g, context: RewardContext())
        expectClose(solo, [1.0, 2, 6].map { 2 * ($0 - 3) / (s1 + 1e-6) }, atol: 1e-6, rtol: 1e-6, "solo")
        // A term that is constant over the group contributes nothing (no NaN).
        let flat = try WeightedMixReward(components: [(acc, 2.0)]).rewards(group: g, context: RewardContext(reference: "zzz"))
        #expect(flat == [0, 0, 0])
        #expect(mix.name == "mix:self_certainty=1.0,accuracy=0.5,accuracy=2.0")
    }

    @Test func registryBuildsAndRejects() throws {
        let checker: @Sendable (String, String) -> Bool = { $0 == $1 }
        let extractor: @Sendable (String) -> String? = { $0 }
        #expect(try RewardRegistry.make(name: "self_certainty") is SelfCertaintyReward)
        #expect(try RewardRegistry.make(name: "rent") is NegativeEntropyReward)
        #expect(try RewardRegistry.make(name: "accuracy", answerChecker: checker) is AccuracyReward)
        #expect(try RewardRegistry.make(name: "majority_vote", answerExtractor: extractor) is MajorityVoteReward)
        let mix = try RewardRegistry.make(name: "mix:self_certainty=1, accuracy=0.5", answerChecker: checker)
        let w = try #require(mix as? WeightedMixReward)
        #expect(w.components.map(\.reward.name) == ["self_certainty", "accuracy"])
        #expect(w.components.map(\.weight) == [1, 0.5])

        #expect(throws: RewardError.unknownReward(name: "selfcertainty", known: RewardRegistry.names)) {
            try RewardRegistry.make(name: "selfcertainty")
        }
        #expect(throws: RewardError.missingClosure(reward: "accuracy", closure: "answerChecker")) {
            try RewardRegistry.make(name: "accuracy")
        }
        #expect(throws: RewardError.missingClosure(reward: "majority_vote", closure: "answerExtractor")) {
            try RewardRegistry.make(name: "majority_vote")
        }
        for bad in ["mix:", "mix:self_certainty", "mix:self_certainty=abc", "mix:rent=1,rent=2",
                    "mix:self_certainty=inf", "mix:mix:rent=1=2"] {
            #expect(throws: RewardError.self, "\(bad)") { try RewardRegistry.make(name: bad) }
        }
        #expect(throws: RewardError.unknownReward(name: "bogus", known: RewardRegistry.names)) {
            try RewardRegistry.make(name: "mix:rent=1,bogus=2")
        }
        // Error text names the problem.
        let e = RewardError.unknownReward(name: "x", known: RewardRegistry.names).description
        #expect(e.contains("\"x\"") && e.contains("self_certainty"))
    }
}
