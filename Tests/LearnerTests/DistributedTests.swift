import Actor
import Foundation
import Learner
import Logging
import Model
import Testing
import TestSupport
import Training
import Transport
import Wire

/// The distributed system on this machine only: a real learner and real actors over real ZeroMQ sockets
/// (ipc:// in a temporary directory), on threads — and, for the SIGKILL test, an actor in its own process.
@Suite(.serialized) struct DistributedTests {
    static let modelDir = Fixtures.url("model/tiny-qwen2")

    /// A learner over the tiny fixture model with prompts of random token ids.
    final class Harness: @unchecked Sendable {  // fields written before threads start, read after they join
        let dir: URL
        let endpoints: Endpoints
        let server: LearnerServer
        let steps: Int
        let perStep: Int
        var summary: LearnerSummary?
        var error: Error?
        let done = DispatchSemaphore(value: 0)

        let trainer: GRPOTrainer

        init(steps: Int = 3, perStep: Int = 2, groupSize: Int = 4, maxLag: Int = 1, heartbeatTimeoutMs: Int = 3000,
             lora: LoRAConfig? = nil, stallReportMs: Int = 30_000, baseWeights: BaseWeights = .f32,
             modelDir: URL = DistributedTests.modelDir,
             tweak: ((inout TrainConfig, inout LearnerOptions) -> Void)? = nil) throws {
            dir = try Fixtures.temporaryDirectory("rlif-dist")
            endpoints = try Endpoints(base: "ipc://\(dir.path)/l")
            self.steps = steps
            self.perStep = perStep
            let policy = try Transformer.load(directory: modelDir, baseWeights: baseWeights)
            var c = TrainConfig()
            c.steps = steps; c.promptsPerStep = perStep; c.groupSize = groupSize; c.klBeta = 0
            c.learningRate = 1e-3; c.maxNewTokens = 6; c.temperature = 1
            c.lora = lora
            var o = LearnerOptions(bind: endpoints, runId: "test", steps: steps, promptsPerStep: perStep, groupSize: groupSize,
                                   sampling: SamplingParams(temperature: 1, topP: 1, topK: 0, maxNewTokens: 6, stopTokenIds: [2]),
                                   seed: 7)
            tweak?(&c, &o)
            let trainer = try GRPOTrainer(policy: policy, reference: nil, config: c)
            self.trainer = trainer
            let compute = try GRPOLearnerCompute(trainer: trainer, scorer: RewardScorer(name: "self_certainty", tokenizer: nil),
                                                 output: dir, answers: [:])
            o.maxLag = maxLag
            o.heartbeatIntervalMs = 200
            o.heartbeatTimeoutMs = heartbeatTimeoutMs
            o.chunkBytes = 8192  // several chunks even for the tiny model
            o.shutdownGraceMs = 3000
            o.stallReportMs = stallReportMs
            server = try LearnerServer(options: o, compute: compute, promptsForStep: { s in
                (0..<perStep).map { k in ("s\(s)p\(k)", (0..<5).map { Int32((s * 31 + k * 7 + $0 * 3) % 90 + 3) }) }
            }, logger: Logger(label: "test.learner"))
        }

        func start() {
            let t = Thread { [self] in
                do { summary = try server.run() } catch { self.error = error }
                done.signal()
            }
            t.stackSize = 8 << 20
            t.start()
        }

        func wait(seconds: Double = 120) -> Bool { done.wait(timeout: .now() + seconds) == .success }
        deinit { try? FileManager.default.removeItem(at: dir) }
    }

    final class ActorThread: @unchecked Sendable {  // summary written by the thread before `done` is signalled
        var summary: ActorSummary?
        var error: Error?
        let done = DispatchSemaphore(value: 0)
        let engine: TransformerRolloutEngine
        init(_ endpoints: Endpoints, id: String, failPromptIds: Set<String> = [], baseWeights: BaseWeights = .f32,
             appliesAdapters: Bool = true, tweak: ((inout ActorOptions) -> Void)? = nil) {
            engine = TransformerRolloutEngine(batchSequences: 8, baseWeights: baseWeights, appliesAdapters: appliesAdapters)
            var options = ActorOptions(learner: endpoints, actorId: id)
            options.failPromptIds = failPromptIds
            tweak?(&options)
            let t = Thread { [self, options] in
                do {
                    let client = try ActorClient(options: options,
                                                 engine: engine,
                                                 logger: Logger(label: "test.\(id)"))
                    summary = try client.run()
                } catch { self.error = error }
                done.signal()
            }
            t.stackSize = 8 << 20
            t.start()
        }
        func wait(seconds: Double = 60) -> Bool { done.wait(timeout: .now() + seconds) == .success }
    }

    func expectEveryPromptTrainedOnce(_ s: LearnerSummary, steps: Int, perStep: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(s.completedSteps == steps, sourceLocation: sourceLocation)
        #expect(s.weightVersion == UInt64(steps + 1), sourceLocation: sourceLocation)
        #expect(s.trainedPrompts.count == steps * perStep, "prompts trained: \(s.trainedPrompts.keys.sorted())", sourceLocation: sourceLocation)
        #expect(s.trainedPrompts.values.allSatisfy { $0 == 1 }, "\(s.trainedPrompts)", sourceLocation: sourceLocation)
        #expect(s.accepted == steps * perStep, sourceLocation: sourceLocation)
    }

    @Test func localRunTrainsEveryPromptOnceAndActorsEndOnTheFinalVersion() throws {
        let h = try Harness()
        h.start()
        let a = ActorThread(h.endpoints, id: "a1"), b = ActorThread(h.endpoints, id: "a2")
        #expect(h.wait(), "learner did not finish")
        #expect(a.wait() && b.wait(), "actors did not finish")
        if let e = h.error ?? a.error ?? b.error { Issue.record("failed: \(e)"); return }
        let s = try #require(h.summary)
        expectEveryPromptTrainedOnce(s, steps: h.steps, perStep: h.perStep)
        #expect(a.summary?.finalVersion == s.weightVersion)
        #expect(b.summary?.finalVersion == s.weightVersion)
        #expect((a.summary?.groupsAcked ?? 0) + (b.summary?.groupsAcked ?? 0) >= h.steps * h.perStep)
    }

    /// A step's records are made durable (`recordStep`, on the training thread) before the checkpoint that covers
    /// it is written. Before, metrics.jsonl was appended from `onStep` on the network thread after the training
    /// thread had written the checkpoint: a learner killed in between, resumed from that checkpoint, skipped the
    /// step in metrics.jsonl (netns-test --kill-resume in CI: steps [1, 3, 4]).
    @Test func stepRecordsAreWrittenBeforeTheirCheckpoint() throws {
        let h = try Harness(steps: 3, tweak: { _, o in o.checkpointEvery = 1 })
        let lock = NSLock()
        nonisolated(unsafe) var seen: [(step: Int, checkpointExisted: Bool)] = []
        h.server.recordStep = { [dir = h.dir] r in
            let ckpt = dir.appendingPathComponent(String(format: "checkpoint-%06d", r.record.step))
            let existed = FileManager.default.fileExists(atPath: ckpt.path)
            lock.lock(); seen.append((r.record.step, existed)); lock.unlock()
        }
        h.start()
        let a = ActorThread(h.endpoints, id: "a1")
        #expect(h.wait(), "learner did not finish")
        #expect(a.wait(), "actor did not finish")
        if let e = h.error ?? a.error { Issue.record("failed: \(e)"); return }
        lock.lock(); defer { lock.unlock() }
        #expect(seen.map(\.step) == [1, 2, 3])
        #expect(seen.allSatisfy { !$0.checkpointExisted }, "recorded after the checkpoint: \(seen)")
        #expect((1...3).allSatisfy { FileManager.default.fileExists(atPath: h.dir.appendingPathComponent(String(format: "checkpoint-%06d", $0)).path) })
    }

    /// LoRA on the learner with both kinds of actor in one run. "merged" (`--merged-weights`, or an actor from
    /// before adapter-only versions) gets every version as the merged W + s·B·A and ends holding exactly that; "lora"
    /// gets the frozen base once and each version as adapters only, and ends holding exactly the learner's base
    /// and adapters (f32 wire), having received per version the adapters' bytes, not the model's.
    @Test func loraLearnerServesMergedAndAdapterOnlyVersionsInOneRun() throws {
        let h = try Harness(steps: 2, lora: LoRAConfig(rank: 4, alpha: 8))
        h.start()
        let merged = ActorThread(h.endpoints, id: "merged", appliesAdapters: false)
        let lora = ActorThread(h.endpoints, id: "lora")
        #expect(h.wait(), "learner did not finish")
        #expect(merged.wait() && lora.wait(), "actors did not finish")
        if let e = h.error ?? merged.error ?? lora.error { Issue.record("failed: \(e)"); return }
        let s = try #require(h.summary)
        expectEveryPromptTrainedOnce(s, steps: h.steps, perStep: h.perStep)
        let policy = h.trainer.policy, ad = try #require(policy.lora)
        #expect(Array(ad.parameters.buffer).contains { $0 != 0 } && ad.entries.allSatisfy { e in
            (0..<(e.outFeatures * ad.rank)).contains { ad.parameters.pointer[e.b + $0] != 0 } }, "B never moved: merged = base")
        let want = FloatBuffer(count: policy.parameters.count)
        want.copy(from: policy.parameters)
        ad.merge(into: want.pointer, layout: policy.layout)
        let mergedModel = try #require(merged.engine.model)
        #expect(mergedModel.lora == nil)
        #expect(Array(mergedModel.parameters.buffer) == Array(want.buffer), "merged actor's weights are not base + adapters")
        #expect(Array(mergedModel.parameters.buffer) != Array(policy.parameters.buffer))
        let loraModel = try #require(lora.engine.model), loraAd = try #require(loraModel.lora)
        #expect(loraAd.enabled && loraAd.rank == 4 && loraAd.scale == ad.scale)
        #expect(Array(loraModel.parameters.buffer) == Array(policy.parameters.buffer), "the base changed on the actor")
        #expect(Array(loraAd.parameters.buffer) == Array(ad.parameters.buffer), "actor adapters are not the learner's")
        let ls = try #require(lora.summary), ms = try #require(merged.summary)
        #expect(ls.frozenBaseBytesReceived == policy.parameters.count * 4, "one f32 base")
        #expect(!ls.versionBytesReceived.isEmpty && ls.versionBytesReceived.values.allSatisfy { $0 == ad.parameters.count * 4 },
                "\(ls.versionBytesReceived) per version, adapters are \(ad.parameters.count * 4) bytes")
        #expect(ms.frozenBaseBytesReceived == 0)
        #expect(ms.versionBytesReceived.values.allSatisfy { $0 == policy.parameters.count * 4 })
    }

    /// BF16 base weights on both sides (`base_weights: bf16` learner, `rlif actor --base-weights bf16`), real
    /// sockets. An actor taking merged versions holds base (widened) + s·B·A rounded to BF16; one applying adapters
    /// fetches the base in the learner's wire dtype (F32 here: a BF16 wire would round the F32 norms too) and holds
    /// it exactly, with the learner's F32 adapters beside it.
    @Test func bf16BaseWeightsOnLearnerAndActor() throws {
        let h = try Harness(steps: 2, lora: LoRAConfig(rank: 4, alpha: 8), baseWeights: .bf16)
        h.start()
        let a = ActorThread(h.endpoints, id: "a1", baseWeights: .bf16, appliesAdapters: false)
        let b = ActorThread(h.endpoints, id: "a2", baseWeights: .bf16)
        #expect(h.wait(), "learner did not finish")
        #expect(a.wait() && b.wait(), "actors did not finish")
        if let e = h.error ?? a.error ?? b.error { Issue.record("failed: \(e)"); return }
        let s = try #require(h.summary)
        expectEveryPromptTrainedOnce(s, steps: h.steps, perStep: h.perStep)
        let policy = h.trainer.policy, ad = try #require(policy.lora)
        let merged = FloatBuffer(count: policy.layout.totalCount)
        policy.readParameters(into: merged.pointer)
        ad.merge(into: merged.pointer, layout: policy.layout)
        let expected = try Transformer(config: policy.config, baseWeights: .bf16)
        expected.setParameters(from: merged.pointer)
        let actorModel = try #require(a.engine.model)
        #expect(actorModel.baseWeights == .bf16)
        let got = FloatBuffer(count: policy.layout.totalCount), want = FloatBuffer(count: policy.layout.totalCount)
        actorModel.readParameters(into: got.pointer)
        expected.readParameters(into: want.pointer)
        #expect(Array(got.buffer) == Array(want.buffer), "actor weights are not bf16(base + adapters)")
        policy.readParameters(into: want.pointer)
        #expect(Array(got.buffer) != Array(want.buffer), "the adapters never reached the actor")
        let loraModel = try #require(b.engine.model)
        loraModel.readParameters(into: got.pointer)
        let sameBase = Array(got.buffer) == Array(want.buffer)
        #expect(sameBase, "the adapter actor's base is not the learner's")
        let sameAdapters = Array(try #require(loraModel.lora).parameters.buffer) == Array(ad.parameters.buffer)
        #expect(sameAdapters, "the adapter actor's adapters are not the learner's")
        #expect(b.summary?.frozenBaseBytesReceived == policy.layout.totalCount * 4, "the base travels in the learner's f32")
    }

    /// Issue 11: adapter-only versions sample what merged full versions sample. Two runs of the embedded default
    /// model with LoRA, the same seed, strictly on-policy (max_lag 0, so every group of step s is sampled with
    /// version s + 1 in both runs), one actor each: "lora" applies adapters, "merged" gets W + s·B·A. Version 1
    /// (B = 0: the adapter term adds exact zeros) gives bit-identical groups. Later versions give the same tokens
    /// and log-probs within 1e-4: the actor computes W·x + s·B·(A·x) where the other computes (W + s·B·A)·x, the
    /// same sums in another order (F32 rounding, ~1e-6 relative in the logits).
    /// Also measures the bytes per weight version on the wire (docs/PROTOCOL.md "Adapter-only versions").
    @Test(.enabled(if: FileManager.default.fileExists(atPath: DistributedTests.defaultModel.appendingPathComponent("model.safetensors").path),
                   "needs Sources/rlif/Resources/default/model"))
    func adapterVersionsSampleWhatMergedVersionsSample() throws {
        final class Groups: @unchecked Sendable {  // written on the learner thread, read after it joins
            var byTask: [UInt64: RolloutGroup] = [:]
        }
        func run(appliesAdapters: Bool) throws -> (groups: [UInt64: RolloutGroup], actor: ActorSummary, adapterBytes: Int, modelBytes: Int) {
            let h = try Harness(steps: 3, perStep: 2, maxLag: 0, lora: LoRAConfig(), modelDir: DistributedTests.defaultModel)
            let groups = Groups()
            h.server.onGroup = { groups.byTask[$0.taskId] = $0 }
            h.start()
            let a = ActorThread(h.endpoints, id: appliesAdapters ? "lora" : "merged", appliesAdapters: appliesAdapters)
            #expect(h.wait(), "learner did not finish")
            #expect(a.wait(), "actor did not finish")
            if let e = h.error ?? a.error { throw e }
            expectEveryPromptTrainedOnce(try #require(h.summary), steps: 3, perStep: 2)
            let policy = h.trainer.policy
            return (groups.byTask, try #require(a.summary), try #require(policy.lora).parameters.count * 4, policy.parameters.count * 4)
        }
        let lora = try run(appliesAdapters: true), merged = try run(appliesAdapters: false)
        #expect(lora.groups.count == 6 && Set(lora.groups.keys) == Set(merged.groups.keys))
        var worst: Float = 0
        for (task, g) in lora.groups.sorted(by: { $0.key < $1.key }) {
            let m = try #require(merged.groups[task])
            #expect(g.weightVersion == m.weightVersion)
            #expect(g.completions.map(\.tokens) == m.completions.map(\.tokens), "task \(task) v\(g.weightVersion): other tokens")
            if g.weightVersion == 1 {
                #expect(g.completions.map(\.logprobs) == m.completions.map(\.logprobs), "v1 (B = 0) must be bit-identical")
            }
            for (c, d) in zip(g.completions, m.completions) {
                for (x, y) in zip(c.logprobs, d.logprobs) { worst = max(worst, abs(x - y)) }
            }
        }
        #expect(worst <= 1e-4, "log-probs differ by up to \(worst)")
        #expect(Set(lora.groups.values.map(\.weightVersion)) == [1, 2, 3])
        // Bytes on the wire per version (the numbers docs/PROTOCOL.md quotes).
        #expect(lora.actor.versionBytesReceived.values.allSatisfy { $0 == lora.adapterBytes })
        #expect(merged.actor.versionBytesReceived.values.allSatisfy { $0 == merged.modelBytes })
        #expect(lora.actor.frozenBaseBytesReceived == lora.modelBytes)
        print("BYTES_PER_VERSION embedded-default lora_r8 adapter=\(lora.adapterBytes) merged=\(merged.modelBytes) frozen_base_once=\(lora.actor.frozenBaseBytesReceived) log_prob_max_diff=\(worst)")
    }

    static let defaultModel = Fixtures.repoRoot.appendingPathComponent("Sources/rlif/Resources/default/model")

    @Test func lateJoinerStartsFromTheCurrentVersion() throws {
        let h = try Harness(steps: 4, perStep: 2)
        let late = LateStart()
        // Captures the endpoints, not `h`: h → server → onStep → h was a cycle that kept this learner (and its
        // ZeroMQ context, never terminated) alive to the end of the test process (LeakSanitizer; ThreadSanitizer's
        // "thread leak" of libzmq's reaper thread).
        h.server.onStep = { [endpoints = h.endpoints] m in
            if m.record.step == 2 { late.fire(endpoints) }  // after the second step: weights v3 exist
        }
        h.start()
        let a = ActorThread(h.endpoints, id: "early")
        #expect(h.wait(), "learner did not finish")
        #expect(a.wait())
        let b = try #require(late.actor, "late actor never started")
        #expect(b.wait())
        if let e = h.error ?? a.error ?? b.error { Issue.record("failed: \(e)"); return }
        let s = try #require(h.summary)
        expectEveryPromptTrainedOnce(s, steps: 4, perStep: 2)
        let installed = try #require(b.summary?.weightVersionsInstalled)
        #expect((installed.first ?? 0) >= 3, "late joiner installed \(installed): it must skip straight to the current version")
        #expect(b.summary?.finalVersion == s.weightVersion)
    }

    final class LateStart: @unchecked Sendable {  // fired once from the learner thread, read after it joins
        var actor: ActorThread?
        func fire(_ e: Endpoints) { if actor == nil { actor = ActorThread(e, id: "late") } }
    }

    @Test func actorKilledMidTaskHasItsTaskReissuedAndNothingCountsTwice() throws {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("rlif")
        try #require(FileManager.default.isExecutableFile(atPath: exe.path), "the rlif executable must be built next to the tests (\(exe.path))")
        let h = try Harness(steps: 2, perStep: 2, heartbeatTimeoutMs: 1500)
        let victim = Process()
        victim.executableURL = exe
        victim.arguments = ["actor", "--learner", "ipc://\(h.dir.path)/l", "--id", "victim", "--log-level", "warning"]
        let killed = DispatchSemaphore(value: 0)
        let once = Once()
        h.server.onAssign = { task, actor in
            if actor == "victim" && once.first() {
                kill(victim.processIdentifier, SIGKILL)  // mid-task: it holds the task and has not answered
                killed.signal()
            }
        }
        h.start()
        try victim.run()
        #expect(killed.wait(timeout: .now() + 60) == .success, "the victim never got a task")
        victim.waitUntilExit()
        #expect(victim.terminationReason == .uncaughtSignal)
        let rescuer = ActorThread(h.endpoints, id: "rescuer")
        #expect(h.wait(), "learner did not finish")
        #expect(rescuer.wait())
        if let e = h.error ?? rescuer.error { Issue.record("failed: \(e)"); return }
        let s = try #require(h.summary)
        expectEveryPromptTrainedOnce(s, steps: 2, perStep: 2)
        #expect(s.actorsDeclaredDead >= 1)
        #expect(s.reissued >= 1)
    }

    final class Once: @unchecked Sendable {  // guarded by lock
        private let lock = NSLock()
        private var fired = false
        func first() -> Bool { lock.lock(); defer { lock.unlock() }; if fired { return false }; fired = true; return true }
    }

    @Test func malformedMessagesAreRefusedByNameAndTheLearnerKeepsServing() throws {
        let h = try Harness(steps: 1, perStep: 2)
        h.start()
        let ctx = try ZMQContext()
        defer { ctx.shutdown() }
        var replies: [String] = [], fields: [String] = []
        for (endpoint, name) in [(h.endpoints.work, "work"), (h.endpoints.weights, "weights")] {
            let s = try ZMQSocket(ctx, .dealer)
            defer { s.close() }
            try s.setOption(.linger, 0)
            try s.setRoutingId("mallory-\(name)")
            try s.connect(endpoint)
            var valid = WireCodec.encode(Envelope(sender: "mallory", body: .hello(Hello(actorId: "mallory"))))
            let truncated = Array(valid.prefix(valid.count / 2))
            var wrongVersion = WireCodec.encode(Envelope(sender: "mallory", body: .heartbeat(Heartbeat()), protocolVersion: 99))
            let garbage: [UInt8] = [0xFF, 0x13, 0x37, 0x00, 0x42, 0x99]
            let oversized = [UInt8](repeating: 0x0A, count: (64 << 20) + 16)  // past the learner's max message size
            for bad in [garbage, truncated, wrongVersion] { _ = try s.send(frames: [bad]) }
            _ = try s.send(frames: [valid, valid])  // two frames where one is expected
            valid = []; wrongVersion = []
            // Collect the error replies.
            let deadline = Date().addingTimeInterval(5)
            var got = 0
            while got < 4 && Date() < deadline {
                guard let f = try s.receiveFrames(timeoutMs: 200) else { continue }
                guard let env = try? WireCodec.decode(f[0]), case .error(let e) = env.body else { continue }
                replies.append("\(name): \(e.code) \(e.message)")
                fields.append("\(e.code) \(e.field)")
                got += 1
            }
            #expect(got == 4, "\(name): \(replies)")
            // Past max_msg_size libzmq drops the connection before the learner sees a byte: no reply, no harm.
            _ = try s.send(frames: [oversized])
        }
        #expect(replies.contains { $0.contains("protocolVersion") })
        // The reply's field is the proto path WireError names (it used to be the whole description).
        #expect(fields.filter { $0 == "protocolVersion envelope.protocol_version" }.count == 2, "\(fields)")
        #expect(fields.filter { $0.hasPrefix("malformed envelope") }.count == 4, "\(fields)")
        #expect(replies.allSatisfy { $0.contains("mallory") }, "errors must name the peer: \(replies)")
        // Still serving: a real actor completes the run.
        let a = ActorThread(h.endpoints, id: "honest")
        #expect(h.wait(), "learner did not finish after the bad messages")
        #expect(a.wait())
        if let e = h.error ?? a.error { Issue.record("failed: \(e)"); return }
        let s = try #require(h.summary)
        expectEveryPromptTrainedOnce(s, steps: 1, perStep: 2)
        #expect(s.malformed >= 8, "\(s.refusedMessages)")
    }

    /// Issue 15: a prompt whose sampling fails on every actor was re-issued forever (0 steps in 2 min). Both actors
    /// fail "s1p0" (the fault hook); it is quarantined after failing on both, its step trains on the other prompt,
    /// and the run finishes.
    @Test func promptFailingOnBothActorsIsQuarantinedAndTheRunFinishes() throws {
        let h = try Harness(steps: 3, perStep: 2)
        h.start()
        let a = ActorThread(h.endpoints, id: "a1", failPromptIds: ["s1p0"])
        let b = ActorThread(h.endpoints, id: "a2", failPromptIds: ["s1p0"])
        #expect(h.wait(), "learner did not finish")
        #expect(a.wait() && b.wait(), "actors did not finish")
        if let e = h.error ?? a.error ?? b.error { Issue.record("failed: \(e)"); return }
        let s = try #require(h.summary)
        #expect(s.completedSteps == 3 && s.weightVersion == 4)
        #expect(s.ledger.quarantined == 1 && s.ledger.failures >= 2, "\(s.ledger)")
        #expect(s.quarantinedPrompts.count == 1 && s.quarantinedPrompts[0].contains("s1p0"), "\(s.quarantinedPrompts)")
        #expect(Set(s.trainedPrompts.keys) == [0, 1, 3, 4, 5], "schedule index 2 (step 1, prompt 0) is never trained")
        #expect(s.trainedPrompts.values.allSatisfy { $0 == 1 })
        #expect((a.summary?.tasksFailed ?? 0) + (b.summary?.tasksFailed ?? 0) >= 2)
    }

    /// A group or failure report naming another learner incarnation (an actor that has not noticed the restart) is
    /// refused by name and never matched against this incarnation's task ids; and a learner waiting for groups that
    /// do not come says so (the resumed learner of issue 15 was silent for 120 s).
    @Test func otherIncarnationIsRefusedAndAWaitingLearnerReportsTheStall() throws {
        let h = try Harness(steps: 1, perStep: 2, stallReportMs: 200)
        h.start()
        let ctx = try ZMQContext()
        defer { ctx.shutdown() }
        let s = try ZMQSocket(ctx, .dealer)
        defer { s.close() }
        try s.setOption(.linger, 0)
        try s.setRoutingId("ghost")
        try s.connect(h.endpoints.work)
        _ = try s.send(frames: [WireCodec.encode(Envelope(sender: "ghost", body: .hello(Hello(actorId: "ghost"))))])
        func next(_ match: (Envelope) -> Bool) throws -> Envelope? {
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                guard let f = try s.receiveFrames(timeoutMs: 100), let env = try? WireCodec.decode(f[0]) else { continue }
                if match(env) { return env }
            }
            return nil
        }
        let welcome = try #require(try next { if case .welcome = $0.body { return true }; return false })
        let incarnation = welcome.learnerIncarnation
        #expect(incarnation != 0, "the learner stamps its incarnation")
        // Ask for work, get a task, answer it as if issued by another incarnation.
        _ = try s.send(frames: [WireCodec.encode(Envelope(sender: "ghost", body: .workRequest(WorkRequest(credits: 1)), learnerIncarnation: incarnation))])
        let item = try #require(try next { if case .workItem = $0.body { return true }; return false })
        guard case .workItem(let w) = item.body else { return }
        #expect(item.learnerIncarnation == incarnation)
        let c = Completion(tokens: [5], logprobs: [-1], selfCertainty: [1], reward: 1, finishReason: .eos)
        let g = RolloutGroup(taskId: w.taskId, actorId: "ghost", weightVersion: 1, completions: Array(repeating: c, count: 4))
        _ = try s.send(frames: [WireCodec.encode(Envelope(sender: "ghost", body: .taskFailure(TaskFailure(taskId: w.taskId, error: "x")),
                                                          learnerIncarnation: incarnation &+ 1))])
        _ = try s.send(frames: [WireCodec.encode(Envelope(sender: "ghost", body: .rolloutGroup(g), learnerIncarnation: incarnation &+ 1))])
        let ack = try #require(try next { if case .ack = $0.body { return true }; return false })
        guard case .ack(let a) = ack.body else { return }
        #expect(a.status == .rejected && a.detail.contains("earlier learner incarnation"), "\(a)")
        // Keep the ghost alive (heartbeats) holding its task, so the learner waits with work outstanding.
        let until = Date().addingTimeInterval(1.0)
        while Date() < until {
            _ = try s.send(frames: [WireCodec.encode(Envelope(sender: "ghost", body: .heartbeat(Heartbeat(weightVersion: 1, tasksInProgress: [w.taskId])), learnerIncarnation: incarnation))])
            _ = try s.receiveFrames(timeoutMs: 100)
        }
        h.server.stopFlag.set()
        #expect(h.wait(), "learner did not stop")
        let sum = try #require(h.summary)
        #expect(sum.otherIncarnation == 2 && sum.ledger.failures == 0 && sum.accepted == 0, "\(sum.ledger)")
        #expect(sum.stallReports >= 1, "no stall report in 1 s of waiting with a 200 ms report interval")
    }
}
