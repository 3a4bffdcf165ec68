import Foundation
import Learner
import Logging
import Actor
import Model
import Testing
import TestSupport
import Training
import Transport
import Wire

/// Benchmarks (not timed tests: they assert only correctness and print numbers). Run with
/// `RLIF_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter LearnerThroughputBench`.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["RLIF_BENCH"] == "1", "benchmark: set RLIF_BENCH=1"))
struct LearnerThroughputBench {
    /// How many rollout groups per second one learner accepts and acknowledges: protocol-speaking clients (hello,
    /// credits, then one RolloutGroup per work item, as fast as acks come back) against the real LearnerServer.
    @Test(arguments: [1, 4]) func groupsAcceptedPerSecond(clients: Int) throws {
        let tasks = 2000, g = 8, tokens = 32, window = 64
        let dir = try Fixtures.temporaryDirectory("rlif-bench")
        defer { try? FileManager.default.removeItem(at: dir) }
        let endpoints = try Endpoints(base: "ipc://\(dir.path)/l")
        let policy = try Transformer.load(directory: Fixtures.url("model/tiny-qwen2"))
        var c = TrainConfig()
        c.steps = 1; c.promptsPerStep = tasks; c.groupSize = g; c.klBeta = 0
        let compute = try GRPOLearnerCompute(trainer: GRPOTrainer(policy: policy, reference: nil, config: c),
                                             scorer: RewardScorer(name: "self_certainty", tokenizer: nil), output: dir, answers: [:])
        var o = LearnerOptions(bind: endpoints, runId: "bench", steps: 1, promptsPerStep: tasks, groupSize: g,
                               sampling: SamplingParams(maxNewTokens: UInt32(tokens)), seed: 1)
        o.shutdownGraceMs = 500
        var logger = Logger(label: "bench.learner")
        logger.logLevel = .warning
        let server = try LearnerServer(options: o, compute: compute, promptsForStep: { _ in
            (0..<tasks).map { ("p\($0)", [Int32(1), 2, 3, 4]) }
        }, logger: logger)
        let done = DispatchSemaphore(value: 0)
        // The server is used only by its thread after start; the box carries it and the result.
        final class Box: @unchecked Sendable { let server: LearnerServer; var summary: LearnerSummary?; var error: Error?
            init(_ s: LearnerServer) { server = s } }
        let box = Box(server)
        let t = Thread { do { box.summary = try box.server.run() } catch { box.error = error }; done.signal() }
        t.stackSize = 8 << 20
        t.start()

        let perClient = tasks / clients
        let start = DispatchSemaphore(value: 0), finished = DispatchSemaphore(value: 0)
        final class Times: @unchecked Sendable { let lock = NSLock(); var acked = 0; var first: Date?; var last: Date? }
        let times = Times()
        for k in 0..<clients {
            let th = Thread {
                do {
                    let ctx = try ZMQContext()
                    let s = try ZMQSocket(ctx, .dealer)
                    try s.setOption(.linger, 0)
                    try s.setRoutingId("bench-\(k)")
                    try s.setMaxMessageSize(64 << 20)
                    try s.connect(endpoints.work)
                    func send(_ m: Message) throws { _ = try s.send(frames: [WireCodec.encode(Envelope(sender: "bench-\(k)", body: m))]) }
                    try send(.hello(Hello(actorId: "bench-\(k)")))
                    start.wait()
                    // Credit-based flow like a real actor: a bounded window of tasks in flight, one more per ack
                    // (a client that takes thousands at once overflows its own receive HWM and loses acks).
                    var granted = min(window, perClient)
                    try send(.workRequest(WorkRequest(credits: UInt32(granted))))
                    let comp = Completion(tokens: [UInt32](repeating: 5, count: tokens), logprobs: [Float](repeating: -1, count: tokens),
                                          selfCertainty: [Float](repeating: 0.5, count: tokens), reward: 0.5, finishReason: .length)
                    var acks = 0
                    while acks < perClient, let f = try s.receiveFrames(timeoutMs: 30_000) {
                        let env = try WireCodec.decode(f[0], maxBytes: 64 << 20)
                        switch env.body {
                        case .workItem(let w):
                            times.lock.lock(); if times.first == nil { times.first = Date() }; times.lock.unlock()
                            try send(.rolloutGroup(RolloutGroup(taskId: w.taskId, actorId: "bench-\(k)", weightVersion: 1,
                                                                promptId: w.promptId, completions: Array(repeating: comp, count: g))))
                        case .ack(let a):
                            if a.status == .accepted { acks += 1 }
                            if granted < perClient { granted += 1; try send(.workRequest(WorkRequest(credits: 1))) }
                        default: break
                        }
                    }
                    times.lock.lock(); times.acked += acks; times.last = Date(); times.lock.unlock()
                    try send(.goodbye(Goodbye(reason: "bench done")))
                    s.close(); ctx.shutdown()
                } catch { Issue.record("client \(k): \(error)") }
                finished.signal()
            }
            th.start()
        }
        Thread.sleep(forTimeInterval: 0.5)  // let every client's hello land first
        for _ in 0..<clients { start.signal() }
        for _ in 0..<clients { finished.wait() }
        #expect(done.wait(timeout: .now() + 300) == .success)
        if let e = box.error { Issue.record("learner: \(e)") }
        #expect(times.acked == perClient * clients)
        let secs = times.last!.timeIntervalSince(times.first!)
        let bytes = WireCodec.encode(Envelope(sender: "x", body: .rolloutGroup(RolloutGroup(taskId: 1, actorId: "x", weightVersion: 1,
            completions: Array(repeating: Completion(tokens: [UInt32](repeating: 5, count: tokens), logprobs: [Float](repeating: -1, count: tokens),
                                                     selfCertainty: [Float](repeating: 0.5, count: tokens), reward: 0.5, finishReason: .length), count: g))))).count
        print(String(format: "BENCH name=learner_accept clients=%d groups=%d group_bytes=%d seconds=%.3f groups_per_s=%.0f",
                     clients, times.acked, bytes, secs, Double(times.acked) / secs))
    }
}

/// Time to put a new weight version on N actors: the learner publishes (notice on PUB), every actor fetches the
/// snapshot in chunks under credit, verifies the CRCs and installs it. Model: the `small` shape (32.5M
/// parameters, 130 MB in F32).
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["RLIF_BENCH"] == "1", "benchmark: set RLIF_BENCH=1"))
struct WeightPropagationBench {
    @Test(arguments: [1, 2, 4]) func newVersionReachesEveryActor(actors n: Int) throws {
        let dir = try Fixtures.temporaryDirectory("rlif-wbench")
        defer { try? FileManager.default.removeItem(at: dir) }
        let endpoints = try Endpoints(base: "ipc://\(dir.path)/l")
        let cfg = ModelConfig(architecture: .qwen2, hiddenSize: 512, intermediateSize: 1536, numHiddenLayers: 8,
                              numAttentionHeads: 8, numKeyValueHeads: 2, headDim: 64, rmsNormEps: 1e-6, ropeTheta: 1e6,
                              vocabSize: 16384, maxPositionEmbeddings: 256, tieWordEmbeddings: true, attentionBias: false,
                              bosTokenId: nil, eosTokenIds: [2], dtype: nil)
        let policy = try Transformer(config: cfg)
        policy.initializeRandom(seed: 1)
        var c = TrainConfig()
        c.steps = 2; c.promptsPerStep = 1; c.groupSize = 2; c.klBeta = 0; c.maxNewTokens = 4
        let compute = try GRPOLearnerCompute(trainer: GRPOTrainer(policy: policy, reference: nil, config: c),
                                             scorer: RewardScorer(name: "self_certainty", tokenizer: nil), output: dir, answers: [:])
        var o = LearnerOptions(bind: endpoints, runId: "wbench", steps: 2, promptsPerStep: 1, groupSize: 2,
                               sampling: SamplingParams(maxNewTokens: 4), seed: 1)
        o.maxLag = 0
        o.shutdownGraceMs = 20_000
        o.heartbeatTimeoutMs = 60_000
        var logger = Logger(label: "bench.learner")
        logger.logLevel = .warning
        let server = try LearnerServer(options: o, compute: compute, promptsForStep: { _ in [("p", [1, 2, 3])] }, logger: logger)
        final class Box: @unchecked Sendable { let server: LearnerServer; var summary: LearnerSummary?; var error: Error?
            init(_ s: LearnerServer) { server = s } }
        let box = Box(server)
        let done = DispatchSemaphore(value: 0)
        let t = Thread { do { box.summary = try box.server.run() } catch { box.error = error }; done.signal() }
        t.stackSize = 8 << 20
        t.start()
        let actors = (0..<n).map { DistributedTests.ActorThread(endpoints, id: "w\($0)") }
        #expect(done.wait(timeout: .now() + 600) == .success)
        for a in actors { #expect(a.wait(seconds: 120)) }
        if let e = box.error { Issue.record("learner: \(e)"); return }
        let s = try #require(box.summary)
        let bytes = Double(policy.parameters.count * 4)
        for v in [UInt64(2), 3] {
            guard let pub = s.publishedAt[v] else { Issue.record("v\(v) never published"); continue }
            let times = actors.compactMap { $0.summary?.installedAt[v] }
            #expect(times.count == n, "v\(v) installed on \(times.count)/\(n) actors")
            guard let last = times.max() else { continue }
            let secs = last.timeIntervalSince(pub)
            print(String(format: "BENCH name=weight_propagation actors=%d version=%d mbytes=%.1f seconds_to_all=%.3f aggregate_gb_per_s=%.3f",
                         n, v, bytes / 1e6, secs, bytes * Double(n) / secs / 1e9))
        }
    }
}
