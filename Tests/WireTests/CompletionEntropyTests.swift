import Testing
@testable import Wire

/// `Completion.entropy` (for the RENT reward) travels with the group: empty or one value per token.
@Suite struct CompletionEntropyTests {
    func group(_ entropy: [Float]) -> Envelope {
        Envelope(sender: "a", body: .rolloutGroup(RolloutGroup(taskId: 3, actorId: "a", weightVersion: 2, completions: [
            Completion(tokens: [1, 2, 3], logprobs: [-1, -2, -3], selfCertainty: [0.5, 0.6, 0.7], reward: 0.6,
                       finishReason: .stop, entropy: entropy)])))
    }

    @Test func roundTripWithAndWithoutEntropy() throws {
        for e: [Float] in [[], [1.5, 0.25, 2]] {
            let back = try WireCodec.decode(WireCodec.encode(group(e)))
            #expect(back == group(e))
        }
    }

    @Test func wrongLengthOrNaNIsRefusedByField() {
        do { _ = try WireCodec.decode(WireCodec.encode(group([1, 2]))); Issue.record("accepted 2 entropies for 3 tokens") } catch {
            #expect("\(error)".contains("rollout_group.completions[0].entropy"))
        }
        do { _ = try WireCodec.decode(WireCodec.encode(group([1, .nan, 2]))); Issue.record("accepted NaN entropy") } catch {
            #expect("\(error)".contains("entropy"))
        }
    }
}
