import Foundation
import Testing
import Wire
@testable import Scheduling

/// GroupCheck: a group is held to its task and to what a model with V tokens can produce.
@Suite struct GroupCheckTests {
    static let V = 100
    static let logV = Float(log(Double(V)))
    static let task = WorkItem(taskId: 9, promptId: "p9", promptTokens: [1, 2, 3], groupSize: 2,
                               sampling: SamplingParams(maxNewTokens: 4, stopTokenIds: [2], stopSequences: [[5, 6]]))

    static func completion(_ tokens: [UInt32] = [7, 8, 2], finish: FinishReason = .stop, sc: Float = 1.5) -> Completion {
        Completion(tokens: tokens, logprobs: tokens.map { _ in -0.7 }, selfCertainty: tokens.map { _ in sc }, reward: sc,
                   finishReason: finish, entropy: tokens.map { _ in 2 })
    }

    static func group(_ cs: [Completion] = [completion(), completion([9, 9, 9, 9], finish: .length)], prompt: String = "p9") -> RolloutGroup {
        RolloutGroup(taskId: 9, actorId: "a", weightVersion: 1, promptId: prompt, completions: cs)
    }

    let check = GroupCheck(vocabSize: V)

    @Test func aSoundGroupPasses() {
        #expect(check.problem(Self.group(), task: Self.task) == nil)
        // Stopped by a stop sequence, values at both ends of [0, log V].
        var a = Self.completion([4, 5, 6], sc: 0), b = Self.completion([3], sc: Self.logV)
        b.finishReason = .stop; b.tokens = [2]
        a.reward = 0; b.reward = Self.logV
        #expect(check.problem(Self.group([a, b]), task: Self.task) == nil)
    }

    /// Each way a group can be impossible for its task is refused, naming the field.
    @Test(arguments: [
        ("prompt", "prompt_id 'other'"),
        ("size", "1 completions"),
        ("empty", "completions[0].tokens is empty"),
        ("long", "5 tokens, more than max_new_tokens 4"),
        ("vocab", "completions[0].tokens[1] = 100 is not below the vocabulary size 100"),
        ("earlyStop", "completions[0].tokens[0] = 2 is a stop token before the end"),
        ("stopWithoutStop", "finish reason stop but the last token 8"),
        ("positiveLogprob", "completions[0].logprobs[0] = 0.5"),
        ("nan", "completions[0].self_certainty[1] = nan"),
        ("scNegative", "completions[0].self_certainty[0] = -0.5: self-certainty KL(U‖p) is finite and at least 0"),
        ("entropy", "completions[0].entropy[0] = 9.0 is outside"),
        ("entropyCount", "completions[0].entropy: 1 values for 3 tokens"),
        ("reward", "completions[0].reward = 50.0 is not the mean self-certainty 1.5"),
        ("lengths", "completions[0].logprobs: 2 values for 3 tokens"),
    ])
    func impossibleGroupsAreRefusedByName(_ kind: String, _ expected: String) throws {
        var cs = Self.group().completions
        var prompt = "p9"
        switch kind {
        case "prompt": prompt = "other"
        case "size": cs = [cs[0]]
        case "empty": cs[0] = Self.completion([])
        case "long": cs[0] = Self.completion([7, 7, 7, 7, 7], finish: .length)
        case "vocab": cs[0] = Self.completion([7, 100, 2])
        case "earlyStop": cs[0] = Self.completion([2, 7, 2])
        case "stopWithoutStop": cs[0] = Self.completion([7, 8])
        case "positiveLogprob": cs[0].logprobs[0] = 0.5
        case "nan": cs[0].selfCertainty[1] = .nan
        case "scNegative": cs[0] = Self.completion(sc: -0.5); cs[0].reward = -0.5
        case "entropy": cs[0].entropy[0] = 9
        case "entropyCount": cs[0].entropy = [1]
        case "reward": cs[0].reward = 50
        case "lengths": cs[0].logprobs = [-1, -1]
        default: Issue.record("unknown case \(kind)")
        }
        let p = try #require(check.problem(Self.group(cs, prompt: prompt), task: Self.task), "\(kind) passed")
        #expect(p.contains(expected), "\(kind): \(p)")
    }

    /// Self-certainty KL(U‖p) has no upper bound: large values are possible for a real model and must pass (an
    /// honest actor's 8.5 nats at V = 512 was once refused here, and its task was re-issued forever). The issue's
    /// forged group (token 7 × 20, self-certainty 50) is in range; `verify_rewards` is what catches it
    /// (SecurityTests.forgedAndMadeUpGroupsAreCaughtAndTheActorsNamed).
    @Test func largeSelfCertaintyIsPossibleAndPasses() throws {
        let c = Completion(tokens: Array(repeating: 7, count: 4), logprobs: Array(repeating: -0.1, count: 4),
                           selfCertainty: [8.548167, 50, 0, 1], reward: Float((8.548167 + 50 + 0 + 1) / 4.0), finishReason: .length)
        let task = WorkItem(taskId: 1, promptId: "p", promptTokens: [1], groupSize: 2, sampling: SamplingParams(maxNewTokens: 4))
        let g = RolloutGroup(taskId: 1, actorId: "x", weightVersion: 1, promptId: "p", completions: [c, c])
        #expect(GroupCheck(vocabSize: 512).problem(g, task: task) == nil)
    }
}

/// RateLimiter: per-peer and global token buckets, replayed with injected time.
@Suite struct RateLimiterTests {
    @Test func perPeerBurstThenRateAndGlobalCap() {
        var r = RateLimiter(.init(perPeerPerSecond: 2, perPeerBurst: 3, globalPerSecond: 5, globalBurst: 5, maxTrackedPeers: 8))
        #expect((0..<5).map { _ in r.allow("a", now: 0) } == [true, true, true, false, false], "burst of 3")
        let b1 = r.allow("b", now: 0), b2 = r.allow("b", now: 0)
        #expect(b1 && b2)
        let c = r.allow("c", now: 0)
        #expect(!c, "global burst of 5 spent")
        let s1 = r.takeSuppressed(), s2 = r.takeSuppressed()
        #expect(s1 == 3 && s2 == 0)
        let early = r.allow("a", now: 400), onTime = r.allow("a", now: 500)
        #expect(!early, "0.8 tokens after 400 ms at 2/s")
        #expect(onTime, "1 token after 500 ms")
        #expect(r.refusedTotal == 4)
    }

    @Test func theTableOfPeersStaysBounded() {
        var r = RateLimiter(.init(perPeerPerSecond: 1, perPeerBurst: 1, globalPerSecond: 1e9, globalBurst: 1e9, maxTrackedPeers: 100))
        for i in 0..<10_000 { _ = r.allow("peer-\(i)", now: UInt64(i / 1000)) }
        #expect(r.trackedPeers <= 100)
        // Untracked peers still meet the global bucket: a flood from new ids cannot bypass every limit.
        var g = RateLimiter(.init(perPeerPerSecond: 1, perPeerBurst: 1, globalPerSecond: 10, globalBurst: 10, maxTrackedPeers: 2))
        #expect((0..<100).filter { g.allow("id-\($0)", now: 0) }.count == 10)
    }
}
