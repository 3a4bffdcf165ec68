import TestSupport
import Wire


/// One realistic envelope of every message type (non-default values in every field, so a field the codec
/// forgets shows up as a round-trip difference).
enum Samples {
    static func completion(_ rng: inout SeededGenerator, length: Int) -> Completion {
        let tokens = (0..<length).map { _ in UInt32.random(in: 0..<151_936, using: &rng) }
        let lp = (0..<length).map { _ in -Float.random(in: 0..<12, using: &rng) }
        let sc = (0..<length).map { _ in Float.random(in: 0..<9, using: &rng) }
        return Completion(tokens: tokens, logprobs: lp, selfCertainty: sc,
                          reward: sc.reduce(0, +) / Float(max(length, 1)),
                          finishReason: length % 2 == 0 ? .eos : .length)
    }

    static func rolloutGroup(groupSize: Int = 8, length: Int = 1024, seed: UInt64 = 7) -> RolloutGroup {
        var rng = SeededGenerator(seed: seed)
        return RolloutGroup(taskId: 9_000_000_001, actorId: "actor-3", weightVersion: 17, promptId: "gsm8k/train/42",
                            completions: (0..<groupSize).map { completion(&rng, length: length - $0) },
                            timings: Timings(prefillMs: 12.5, decodeMs: 873.25, generatedTokens: 8164))
    }

    static func snapshotChunk() -> SnapshotChunk {
        let data = ArraySlice((0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        return SnapshotChunk(version: 5, chunkIndex: 0, nChunks: 3, dtype: .bf16, offset: 0, data: data,
                             crc32: CRC32.checksum(data), totalBytes: 2600,
                             manifest: [TensorEntry(name: "model.embed_tokens.weight", shape: [32, 20], offsetElements: 0),
                                        TensorEntry(name: "model.norm.weight", shape: [20], offsetElements: 640)],
                             chunkBytes: 1000, snapshotCRC32: 0xDEAD_BEEF, kind: .adapter)
    }

    static let bodies: [Message] = [
        .hello(Hello(actorId: "actor-3", hostname: "node-1", pid: 4242, maxBatchSequences: 16, weightVersion: 2,
                     appliesAdapters: true)),
        .welcome(Welcome(runId: "run-2026-12-01", currentWeightVersion: 9, modelConfigJson: #"{"hidden_size": 64, "name": "ü"}"#,
                         heartbeatIntervalMs: 500, heartbeatTimeoutMs: 3000,
                         lora: AdapterSpec(rank: 16, alpha: 32, targetModules: ["q_proj", "", "down_proj"]))),
        .heartbeat(Heartbeat(weightVersion: 9, tasksInProgress: [1, 2, UInt64.max], creditsOutstanding: 3)),
        .workRequest(WorkRequest(credits: 4)),
        .workItem(WorkItem(taskId: 77, promptId: "p-77", promptTokens: [1, 403, 407, 261, 378], groupSize: 8,
                           sampling: SamplingParams(temperature: 0.9, topP: 0.95, topK: 50, maxNewTokens: 512,
                                                    stopTokenIds: [2, 151_643], stopSequences: [[271], [1406, 271, 12]]),
                           seed: 0xDEAD_BEEF, minWeightVersion: 8, deadlineMs: 60_000)),
        .noWork(NoWork(retryAfterMs: 250, finished: true, reason: "run finished")),
        .rolloutGroup(rolloutGroup(groupSize: 3, length: 17)),
        .ack(Ack(taskId: 77, status: .duplicate, detail: "already have task 77")),
        .weightNotice(WeightNotice(version: 10, totalBytes: 104_857_600, nChunks: 25, dtype: .f32, crc32: 0x1234_5678,
                                   chunkBytes: 4 << 20, adapter: true)),
        .snapshotRequest(SnapshotRequest(version: 10, firstChunk: 3, credits: 2, dtype: .bf16, kind: .adapter)),
        .snapshotChunk(snapshotChunk()),
        .error(ErrorMessage(code: .protocolVersion, message: "peer speaks 2", field: "envelope.protocol_version")),
        .goodbye(Goodbye(reason: "SIGTERM")),
        .taskFailure(TaskFailure(taskId: 4_294_967_303, error: "prompt of 300 tokens leaves no room")),
    ]

    static var envelopes: [Envelope] {
        bodies.map { Envelope(sender: "actor-3", sentUnixMs: 1_764_547_200_123, body: $0, learnerIncarnation: 0x5EED_1234_ABCD) }
    }
}
