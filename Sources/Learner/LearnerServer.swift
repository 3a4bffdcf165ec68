import Foundation
import Logging
import Training
import Transport
import Wire

/// Settings of the learner's network side.
public struct LearnerOptions: Sendable {
    public var bind: Endpoints
    public var runId: String
    public var steps: Int
    /// Steps already completed (resume); the first step trained is `startStep`.
    public var startStep: Int = 0
    public var promptsPerStep: Int
    public var groupSize: Int
    public var sampling: SamplingParams
    public var seed: UInt64
    /// Groups sampled with weights more than this many updates older than the policy they train are stale.
    public var maxLag: Int = 1
    public var heartbeatIntervalMs: Int = 1000
    public var heartbeatTimeoutMs: Int = 10_000
    /// A task not answered this long after it was handed out is re-issued to someone else.
    public var taskTimeoutMs: Int = 600_000
    public var weightDType: DType = .f32
    public var chunkBytes: Int = 4 << 20
    public var checkpointEvery: Int = 0
    /// Largest message accepted on any socket.
    public var maxMessageBytes: Int = 64 << 20
    /// After the last step, how long to wait for actors to say goodbye.
    public var shutdownGraceMs: Int = 5000

    public init(bind: Endpoints, runId: String, steps: Int, promptsPerStep: Int, groupSize: Int,
                sampling: SamplingParams, seed: UInt64) {
        self.bind = bind
        self.runId = runId
        self.steps = steps
        self.promptsPerStep = promptsPerStep
        self.groupSize = groupSize
        self.sampling = sampling
        self.seed = seed
    }
}

/// Counters for logs, metrics and tests.
public struct LearnerSummary: Sendable {
    public var completedSteps = 0
    public var weightVersion: UInt64 = 0
    public var accepted = 0
    public var duplicates = 0
    public var stale = 0
    public var rejected = 0
    public var reissued = 0
    public var malformed = 0
    public var actorsSeen = 0
    public var actorsDeclaredDead = 0
    /// prompt index → times it was trained on (each must be 1).
    public var trainedPrompts: [Int: Int] = [:]
    public var refusedMessages: [String] = []
}

/// The learner's network side on the calling thread (zguide Paranoid Pirate broker + Clone server), with the
/// GRPO steps on a training thread so actors are served (heartbeats, acks, weights) while a step runs.
///
/// Versions: the initial weights are version 1; training step s (0-based) turns version s+1 into s+2. Tasks
/// of step s may be sampled with any version ≥ s+1−maxLag, so with maxLag = 0 training is strictly on-policy
/// and with maxLag = 1 actors sample step s+1 while step s trains.
public final class LearnerServer {
    public let options: LearnerOptions
    let compute: LearnerCompute
    let promptsForStep: (Int) -> [(id: String, tokens: [Int32])]
    let log: Logger
    /// Called with each step's metrics (after training, before the notice goes out).
    public var onStep: (([String: Any]) -> Void)?
    /// Returns the resumable state (data cursor etc.) to store in a checkpoint after `completedSteps`.
    public var checkpointState: ((Int) -> [String: Any])?

    private let context: ZMQContext
    private var work: ZMQSocket!
    private var notices: ZMQSocket!
    private var weights: ZMQSocket!

    // Actors.
    private struct Peer {
        var identity: [UInt8]
        var lastHeard: Date
        var lastHeartbeatSent = Date.distantPast
        var credits = 0
        var weightVersion: UInt64 = 0
    }
    private var peers: [String: Peer] = [:]
    private var goodbyes: Set<String> = []

    // Tasks.
    private enum TaskState { case pending, assigned(actor: String, since: Date), done }
    private struct Task {
        var id: UInt64
        var step: Int
        var promptIndex: Int
        var promptId: String
        var tokens: [Int32]
        var seed: UInt64
        var state: TaskState
        var minVersion: UInt64
    }
    private var tasks: [UInt64: Task] = [:]
    private var pendingOrder: [UInt64] = []      // pending task ids, oldest step first
    private var stepGroups: [Int: [AcceptedGroup]] = [:]
    private var openedSteps: Int                 // steps whose tasks exist
    private var nextTaskId: UInt64

    // Weights and training.
    private var version: UInt64 = 0
    private var snapshots: [UInt64: WeightSnapshot] = [:]
    private var lastNoticeSent = Date.distantPast
    private var completedSteps: Int
    private let trainer = TrainerThread()
    private var training = false
    public private(set) var summary = LearnerSummary()
    private var stopRequested: Bool { stopFlag.isSet }

    public init(options: LearnerOptions, compute: LearnerCompute,
                promptsForStep: @escaping (Int) -> [(id: String, tokens: [Int32])], logger: Logger) throws {
        self.options = options
        self.compute = compute
        self.promptsForStep = promptsForStep
        log = logger
        completedSteps = options.startStep
        openedSteps = options.startStep
        // Task ids are unique across resumes: step-major, so a restarted learner never reuses an old id.
        nextTaskId = UInt64(options.startStep) << 32 | 1
        context = try ZMQContext()
    }

    /// Set from any thread (e.g. a SIGINT/SIGTERM handler): finish the current step, tell actors to stop.
    public let stopFlag = StopFlag()

    /// Serves until every step is trained and actors have been told, then returns.
    public func run() throws -> LearnerSummary {
        try bindSockets()
        defer { trainer.stop(); for s in [work, notices, weights] { s?.close() }; context.shutdown() }
        try publish(version: UInt64(options.startStep) + 1)
        log.info("learner \(options.runId) serving on \(options.bind); \(options.steps - options.startStep) steps to go")
        var finishedAt: Date?
        while true {
            openSteps()
            try pump(timeoutMs: 20)
            try collectTraining()
            maybeStartTraining()
            housekeeping()
            let done = completedSteps >= options.steps || (stopRequested && !training)
            if done && finishedAt == nil {
                finishedAt = Date()
                if completedSteps < options.steps {
                    // Stopped early (SIGINT/SIGTERM): keep what was trained.
                    try compute.checkpoint(completedSteps: completedSteps, state: checkpointState?(completedSteps) ?? [:])
                    log.info("stopped at step \(completedSteps); checkpoint written; telling actors")
                } else {
                    log.info("training finished at step \(completedSteps); telling actors")
                }
            }
            if let t = finishedAt {
                let live = peers.keys.filter { !goodbyes.contains($0) }
                if live.isEmpty || Date().timeIntervalSince(t) * 1000 > Double(options.shutdownGraceMs) {
                    summary.completedSteps = completedSteps
                    summary.weightVersion = version
                    return summary
                }
            }
        }
    }

    private var isFinished: Bool { completedSteps >= options.steps || (stopRequested && !training) }

    // MARK: Sockets

    private func bindSockets() throws {
        work = try ZMQSocket(context, .router)
        notices = try ZMQSocket(context, .pub)
        weights = try ZMQSocket(context, .router)
        for s in [work!, notices!, weights!] {
            try s.setOption(.linger, 0)
            try s.setMaxMessageSize(Int64(options.maxMessageBytes))
        }
        // Snapshot chunks are large: let a few sit in the pipe per peer (credits bound it anyway).
        try weights.setOption(.sendHighWaterMark, 64)
        try work.bind(options.bind.work)
        try notices.bind(options.bind.notices)
        try weights.bind(options.bind.weights)
    }

    private func send(_ socket: ZMQSocket, to identity: [UInt8], _ body: Message) {
        let env = Envelope(sender: "learner", sentUnixMs: UInt64(Date().timeIntervalSince1970 * 1000), body: body)
        let bytes = WireCodec.encode(env)
        do { _ = try socket.send(frames: [identity, bytes], dontWait: true) } catch {
            log.warning("send to \(String(decoding: identity, as: UTF8.self)) failed: \(error)")
        }
    }

    // MARK: Receiving

    private func pump(timeoutMs: Int) throws {
        let poller = ZMQPoller()
        _ = poller.add(work)
        _ = poller.add(weights)
        for i in try poller.poll(timeoutMs: timeoutMs) {
            let socket = poller.socket(i)
            var budget = 256  // bound one pass so timers still run under load
            while budget > 0, let frames = try socket.receiveFrames(timeoutMs: 0) {
                budget -= 1
                let sockName = i == 0 ? "work" : "weights"
                guard frames.count == 2 else {
                    refuse(frames.first ?? [], socket, "\(sockName): expected 2 frames (identity, message), got \(frames.count)", .malformed, field: "")
                    continue
                }
                let identity = frames[0]
                let peer = String(decoding: identity, as: UTF8.self)
                let env: Envelope
                do { env = try WireCodec.decode(frames[1], maxBytes: options.maxMessageBytes) } catch {
                    let code: ErrorCode
                    switch error {
                    case .protocolVersion: code = .protocolVersion
                    case .tooLarge: code = .tooLarge
                    default: code = .malformed
                    }
                    refuse(identity, socket, "\(sockName) message from '\(peer)': \(error)", code, field: "\(error)")
                    continue
                }
                if i == 0 { handleWork(env, identity: identity, peer: peer) } else { handleWeights(env, identity: identity, peer: peer) }
            }
        }
    }

    private func refuse(_ identity: [UInt8], _ socket: ZMQSocket, _ what: String, _ code: ErrorCode, field: String) {
        summary.malformed += 1
        summary.refusedMessages.append(what)
        log.error("refused \(what)")
        if !identity.isEmpty { send(socket, to: identity, .error(ErrorMessage(code: code, message: what, field: field))) }
    }

    private func handleWork(_ env: Envelope, identity: [UInt8], peer: String) {
        let now = Date()
        if case .hello(let h) = env.body {
            if peers[peer] == nil { summary.actorsSeen += 1 }
            peers[peer] = Peer(identity: identity, lastHeard: now, weightVersion: h.weightVersion)
            goodbyes.remove(peer)
            log.info("actor \(peer) joined (host \(h.hostname), pid \(h.pid), batch \(h.maxBatchSequences))")
            send(work, to: identity, .welcome(Welcome(
                runId: options.runId, currentWeightVersion: version, modelConfigJson: compute.modelConfigJSON,
                heartbeatIntervalMs: UInt32(options.heartbeatIntervalMs), heartbeatTimeoutMs: UInt32(options.heartbeatTimeoutMs))))
            return
        }
        guard var p = peers[peer] else {
            // Not (or no longer) known: e.g. declared dead, or this learner restarted. It must say hello again;
            // a group it sends meanwhile is resent by the actor after its new welcome.
            send(work, to: identity, .error(ErrorMessage(code: .unknownPeer, message: "say hello first", field: env.body.fieldName)))
            return
        }
        p.lastHeard = now
        peers[peer] = p
        switch env.body {
        case .heartbeat(let hb):
            peers[peer]?.weightVersion = hb.weightVersion
        case .workRequest(let r):
            peers[peer]?.credits += Int(r.credits)
            dispatch(to: peer)
        case .rolloutGroup(let g):
            accept(g, from: peer, identity: identity)
        case .goodbye(let b):
            log.info("actor \(peer) left: \(b.reason)")
            goodbyes.insert(peer)
            releaseTasks(of: peer, reason: "said goodbye")
            peers.removeValue(forKey: peer)
        default:
            refuse(identity, work, "unexpected \(env.body.fieldName) from '\(peer)' on the work socket", .malformed, field: env.body.fieldName)
        }
    }

    // MARK: Tasks (credits, deadlines, re-issue, dedupe)

    /// Creates the tasks of every step that may be sampled now (see the version rule above).
    private func openSteps() {
        guard !stopRequested else { return }
        while openedSteps < options.steps && openedSteps <= completedSteps + options.maxLag {
            let s = openedSteps
            let prompts = promptsForStep(s)
            for (k, pr) in prompts.enumerated() {
                let id = nextTaskId
                nextTaskId += 1
                let seed = SingleProcessRun.taskSeed(runSeed: options.seed, step: s, index: k)
                tasks[id] = Task(id: id, step: s, promptIndex: s * options.promptsPerStep + k, promptId: pr.id,
                                 tokens: pr.tokens, seed: seed, state: .pending,
                                 minVersion: UInt64(max(1, s + 1 - options.maxLag)))
                pendingOrder.append(id)
            }
            openedSteps += 1
        }
    }

    private func dispatch(to peer: String) {
        guard var p = peers[peer] else { return }
        var sent = 0
        while p.credits > 0, let idx = pendingOrder.firstIndex(where: { tasks[$0] != nil }) {
            let id = pendingOrder.remove(at: idx)
            guard var t = tasks[id], case .pending = t.state else { continue }
            t.state = .assigned(actor: peer, since: Date())
            tasks[id] = t
            p.credits -= 1
            sent += 1
            send(work, to: p.identity, .workItem(WorkItem(
                taskId: id, promptId: t.promptId, promptTokens: t.tokens.map { UInt32(bitPattern: $0) },
                groupSize: UInt32(options.groupSize), sampling: options.sampling, seed: t.seed,
                minWeightVersion: t.minVersion, deadlineMs: UInt32(min(options.taskTimeoutMs, Int(UInt32.max))))))
        }
        if p.credits > 0 {
            let fin = isFinished
            send(work, to: p.identity, .noWork(NoWork(retryAfterMs: fin ? 1000 : 100, finished: fin,
                                                      reason: fin ? "all \(options.steps) steps trained" : "waiting for the next step")))
            p.credits = 0
        }
        peers[peer] = p
    }

    private func accept(_ g: RolloutGroup, from peer: String, identity: [UInt8]) {
        func ack(_ s: AckStatus, _ detail: String = "") {
            send(work, to: identity, .ack(Ack(taskId: g.taskId, status: s, detail: detail)))
        }
        guard var t = tasks[g.taskId] else {
            summary.rejected += 1
            log.warning("group for unknown task \(g.taskId) from \(peer) rejected")
            return ack(.rejected, "unknown task \(g.taskId)")
        }
        if case .done = t.state {
            summary.duplicates += 1
            log.info("duplicate group for task \(g.taskId) from \(peer) dropped")
            return ack(.duplicate)
        }
        if g.completions.count != options.groupSize {
            summary.rejected += 1
            requeue(&t, reason: "group of \(g.completions.count) from \(peer), expected \(options.groupSize)")
            return ack(.rejected, "expected \(options.groupSize) completions, got \(g.completions.count)")
        }
        if let bad = g.completions.firstIndex(where: { $0.tokens.isEmpty || !$0.reward.isFinite }) {
            summary.rejected += 1
            requeue(&t, reason: "completion \(bad) from \(peer) is empty or has a non-finite reward")
            return ack(.rejected, "completions[\(bad)] is empty or has a non-finite reward")
        }
        if g.weightVersion < t.minVersion {
            summary.stale += 1
            requeue(&t, reason: "stale: sampled with v\(g.weightVersion), step \(t.step) needs ≥ v\(t.minVersion)")
            return ack(.stale, "needs weights ≥ v\(t.minVersion)")
        }
        t.state = .done
        tasks[t.id] = t
        summary.accepted += 1
        stepGroups[t.step, default: []].append(AcceptedGroup(taskId: t.id, step: t.step, promptIndex: t.promptIndex,
                                                             promptTokens: t.tokens, group: g))
        ack(.accepted)
    }

    private func requeue(_ t: inout Task, reason: String) {
        t.state = .pending
        tasks[t.id] = t
        if !pendingOrder.contains(t.id) { pendingOrder.insert(t.id, at: 0) }
        summary.reissued += 1
        log.info("task \(t.id) (step \(t.step)) re-issued: \(reason)")
    }

    private func releaseTasks(of peer: String, reason: String) {
        for (id, var t) in tasks {
            if case .assigned(let a, _) = t.state, a == peer {
                _ = id
                requeue(&t, reason: "actor \(peer) \(reason)")
            }
        }
        // Hand them to whoever has credits.
        for other in peers.keys where other != peer { dispatch(to: other) }
    }

    // MARK: Training

    private func maybeStartTraining() {
        guard !training, completedSteps < options.steps, !stopRequested else { return }
        let s = completedSteps
        guard let groups = stepGroups[s], groups.count == options.promptsPerStep else { return }
        stepGroups[s] = nil
        training = true
        let compute = self.compute
        let state = checkpointState?(s + 1) ?? [:]
        let doCheckpoint = options.checkpointEvery > 0 && (s + 1) % options.checkpointEvery == 0 || s + 1 == options.steps
        let dtype = options.weightDType, chunk = options.chunkBytes
        let nextVersion = UInt64(s) + 2
        trainer.submit {
            let metrics = try compute.train(step: s, groups: groups.sorted { $0.promptIndex < $1.promptIndex })
            let snap = try compute.snapshot(version: nextVersion, dtype: dtype, chunkBytes: chunk)
            if doCheckpoint { try compute.checkpoint(completedSteps: s + 1, state: state) }
            return (metrics, snap)
        }
        for g in groups { summary.trainedPrompts[g.promptIndex, default: 0] += 1 }
    }

    private func collectTraining() throws {
        guard training, let result = trainer.poll() else { return }
        training = false
        switch result {
        case .success(let (metrics, snap)):
            completedSteps += 1
            onStep?(metrics)
            install(snap)
        case .failure(let e):
            throw e
        }
    }

    // MARK: Weights (Clone pattern server)

    private func publish(version v: UInt64) throws {
        install(try compute.snapshot(version: v, dtype: options.weightDType, chunkBytes: options.chunkBytes))
    }

    private func install(_ snap: WeightSnapshot) {
        snapshots[snap.version] = snap
        // Keep the current and the previous version: an actor mid-fetch of the previous one may finish it.
        for v in snapshots.keys where v + 1 < snap.version { snapshots[v] = nil }
        version = snap.version
        sendNotice()
        log.info("weights v\(snap.version) published (\(snap.totalBytes) bytes in \(snap.nChunks) chunks)")
    }

    private func sendNotice() {
        guard let snap = snapshots[version] else { return }
        let env = Envelope(sender: "learner", sentUnixMs: UInt64(Date().timeIntervalSince1970 * 1000), body: .weightNotice(snap.notice))
        do { _ = try notices.send(frames: [WireCodec.encode(env)], dontWait: true) } catch {
            log.warning("notice v\(version) not sent: \(error)")
        }
        lastNoticeSent = Date()
    }

    private func handleWeights(_ env: Envelope, identity: [UInt8], peer: String) {
        guard case .snapshotRequest(let r) = env.body else {
            return refuse(identity, weights, "unexpected \(env.body.fieldName) from '\(peer)' on the weights socket", .malformed, field: env.body.fieldName)
        }
        let v = r.version == 0 ? version : r.version
        guard let snap = snapshots[v] else {
            send(weights, to: identity, .error(ErrorMessage(code: .unknownVersion,
                message: "version \(v) is not served (current \(version))", field: "snapshot_request.version")))
            return
        }
        let first = Int(r.firstChunk)
        let last = min(snap.nChunks, first + Int(min(r.credits, 64)))
        guard first < snap.nChunks else {
            send(weights, to: identity, .error(ErrorMessage(code: .malformed,
                message: "first_chunk \(first) >= n_chunks \(snap.nChunks)", field: "snapshot_request.first_chunk")))
            return
        }
        for i in first..<last {
            let env = Envelope(sender: "learner", sentUnixMs: 0, body: .snapshotChunk(snap.chunk(i)))
            do { _ = try weights.send(frames: [identity, WireCodec.encode(env)], dontWait: true) } catch {
                log.warning("chunk \(i) of v\(v) to \(peer) not sent: \(error)")
            }
        }
    }

    // MARK: Timers

    private func housekeeping() {
        let now = Date()
        // Paranoid Pirate: an actor silent for the timeout is dead; its tasks go to others.
        for (name, p) in peers where now.timeIntervalSince(p.lastHeard) * 1000 > Double(options.heartbeatTimeoutMs) {
            log.warning("actor \(name) silent for \(Int(now.timeIntervalSince(p.lastHeard) * 1000)) ms: declared dead")
            summary.actorsDeclaredDead += 1
            peers.removeValue(forKey: name)
            releaseTasks(of: name, reason: "missed its heartbeats")
        }
        for (name, p) in peers where now.timeIntervalSince(p.lastHeartbeatSent) * 1000 >= Double(options.heartbeatIntervalMs) {
            send(work, to: p.identity, .heartbeat(Heartbeat(weightVersion: version)))
            peers[name]?.lastHeartbeatSent = now
        }
        for (_, var t) in tasks {
            if case .assigned(let a, let since) = t.state, now.timeIntervalSince(since) * 1000 > Double(options.taskTimeoutMs) {
                requeue(&t, reason: "not answered by \(a) within \(options.taskTimeoutMs) ms")
            }
        }
        // Late subscribers miss a notice sent before they joined (PUB drops): repeat the current one.
        if now.timeIntervalSince(lastNoticeSent) > 1 { sendNotice() }
        // Pending tasks and actors with credits meet here too (e.g. after a re-issue or a new step opened).
        if !pendingOrder.isEmpty || isFinished {
            for (name, p) in peers where p.credits > 0 { dispatch(to: name) }
        }
    }
}

/// A flag any thread may set (signal handlers run on a dispatch queue, the loop reads it).
public final class StopFlag: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var value = false
    public init() {}
    public func set() { lock.lock(); value = true; lock.unlock() }
    public var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}

/// Runs submitted jobs one at a time on a dedicated thread; the network loop polls for the result.
final class TrainerThread: @unchecked Sendable {  // all state behind `cond`
    typealias Output = ([String: Any], WeightSnapshot)
    private let cond = NSCondition()
    private var job: (() throws -> Output)?
    private var result: Result<Output, Error>?
    private var stopping = false
    private var thread: Thread?

    func submit(_ body: @escaping () throws -> Output) {
        cond.lock()
        if thread == nil {
            let t = Thread { [self] in loop() }
            t.name = "rlif-learner-train"
            t.stackSize = 8 << 20
            thread = t
            t.start()
        }
        job = body
        cond.broadcast()
        cond.unlock()
    }

    func poll() -> Result<Output, Error>? {
        cond.lock(); defer { cond.unlock() }
        let r = result
        result = nil
        return r
    }

    func stop() { cond.lock(); stopping = true; cond.broadcast(); cond.unlock() }

    private func loop() {
        while true {
            cond.lock()
            while job == nil && !stopping { cond.wait() }
            if stopping { cond.unlock(); return }
            let j = job!
            job = nil
            cond.unlock()
            let r = Result { try j() }
            cond.lock(); result = r; cond.unlock()
        }
    }
}
