import Foundation
import Logging
import Scheduling
import Shared
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
    /// Largest message accepted on any socket (`ZMQ_MAXMSGSIZE`: libzmq drops a peer that sends more). Inbound
    /// messages are small (a RolloutGroup of 8 × 1024 tokens is ~90 KB).
    public var maxMessageBytes: Int = WireCodec.defaultMaxBytes
    /// CURVE on every socket with a ZAP handler admitting only listed keys; nil = plain (the CLI allows that only
    /// on ipc:// and loopback, or with --insecure).
    public var curve: LearnerCurve?
    /// Per-peer and global limits (admission, error replies, log lines).
    public var limits = AbuseLimits()
    /// After the last step, how long to wait for actors to say goodbye.
    public var shutdownGraceMs: Int = 5000
    /// This run of the process (random, non-zero, new at every start): on every message the learner sends, so
    /// actors notice a restarted learner at its first message (docs/PROTOCOL.md, "Learner restarts").
    public var incarnation: UInt64 = UInt64.random(in: 1...UInt64.max)
    /// With tasks outstanding and no group arriving (and no step training), log what is outstanding this often.
    public var stallReportMs: Int = 30_000

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
    /// The task ledger's totals (accepted, duplicate, stale, rejected, re-issued, dead actors).
    public var ledger = TaskLedger.Counts()
    public var accepted: Int { ledger.accepted }
    public var duplicates: Int { ledger.duplicate }
    public var stale: Int { ledger.stale }
    public var rejected: Int { ledger.rejected }
    public var reissued: Int { ledger.reissued }
    public var actorsDeclaredDead: Int { ledger.deadActors }
    public var malformed = 0
    public var actorsSeen = 0
    /// prompt index → times it was trained on (each must be 1).
    public var trainedPrompts: [Int: Int] = [:]
    /// The newest refused-message texts (at most `AbuseLimits.keptRefusals`).
    public var refusedMessages: [String] = []
    /// Handshakes the ZAP handler refused (key not listed, or not CURVE).
    public var deniedConnections = 0
    /// Messages dropped without a reply: revoked, banned or mismatched keys, or from unwelcomed peers.
    public var droppedMessages = 0
    /// Groups refused by `GroupCheck` (or by verification), per actor id: the misbehaving actors.
    public var invalidGroups: [String: Int] = [:]
    /// Actors cut off: banned after invalid or unverifiable values, or their key revoked.
    public var bannedActors: [String] = []
    /// Error replies and log lines not sent because of the rate limits.
    public var errorRepliesSuppressed = 0
    public var logLinesSuppressed = 0
    /// Prompts given up on (failed on two actors), as "id (schedule index i, step s)".
    public var quarantinedPrompts: [String] = []
    /// Groups and failure reports refused because their task came from an earlier learner incarnation.
    public var otherIncarnation = 0
    /// Times the learner logged that work was outstanding and nothing arrived.
    public var stallReports = 0
    /// When each weight version was published (for weight-propagation measurements).
    public var publishedAt: [UInt64: Date] = [:]
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
    /// Called with each step's records (after training, before the notice goes out), on the network thread.
    public var onStep: ((StepResult) -> Void)?
    /// Called with each step's records on the training thread, before that step's checkpoint is written: where the
    /// run's history is made durable (metrics.jsonl), so that it never lags a checkpoint. Written from `onStep`, a
    /// learner killed between the checkpoint and the row lost the row: resumed from that checkpoint, its
    /// metrics.jsonl skipped the step (netns-test --kill-resume, 2026-12-03: steps [1, 3, 4]).
    public var recordStep: ((StepResult) -> Void)?
    /// Called with (task id, actor id) whenever a task is handed out (logs, tests).
    public var onAssign: ((UInt64, String) -> Void)?
    /// Called with every group accepted for training, on the learner's network thread (tests).
    public var onGroup: ((RolloutGroup) -> Void)?
    /// Called about once a second with the learner's status (e.g. to update Prometheus gauges).
    public var onStatus: ((LearnerStatus) -> Void)?
    /// Returns the data cursor to store in a checkpoint after `completedSteps`.
    public var checkpointCursor: ((Int) -> DataCursor)?

    private let context: ZMQContext
    private var work: ZMQSocket!
    private var notices: ZMQSocket!
    private var weights: ZMQSocket!
    private var zap: ZAPHandler?
    private var peerGuard: PeerGuard
    private let groupCheck: GroupCheck
    /// Set from any thread (a SIGHUP handler): reload the authorized keys with `reloadKeys` at the next tick.
    public let reloadFlag = RequestFlag()
    /// When (monotonic ms) the notice PUB is to be bound again after a revocation (closed, so revoked subscribers
    /// drop off).
    private var noticesRebindAt: UInt64?
    /// Reads the authorized keys again (the same file or directory as at start).
    public var reloadKeys: (() throws -> AuthorizedKeys)?

    // Actors: identities for sending; liveness, credits and tasks live in the ledger.
    private struct Peer {
        var identity: [UInt8]
        var lastHeartbeatSent: UInt64?  // monotonic ms (`clock`)
        /// In a LoRA run: gets the frozen base once and adapter-only versions (it said Hello.applies_adapters).
        var appliesAdapters = false
    }
    private var peers: [String: Peer] = [:]
    /// Actors declared dead (missed heartbeats) that have not said hello or goodbye since: the routing identity of
    /// their last connection. A suspended process (SIGSTOP, a stalled VM) keeps its TCP connection, so what is sent
    /// to it waits in its socket buffer; the finish notice goes to these too, or a resumed one would wait for a
    /// learner that has left (scripts/chaos, `LearnerRestartTests.actorSuspendedWhileTheRunFinishes…`).
    private var departed: [String: [UInt8]] = [:]

    // Tasks (TaskLedger) and their steps (StepPipeline): pure logic, this class only feeds them events.
    var ledger: TaskLedger
    var pipeline: StepPipeline
    private var stall: StallWatch
    private let clock = MonotonicClock()
    var nowMs: UInt64 { clock.nowMs }

    // Weights and training.
    var version: UInt64 = 0
    // Status (LearnerServer+Status.swift).
    var actorBoard = ActorBoard()
    var stepBoard = StepBoard()
    var lastStatusPublished = Date.distantPast
    /// The versions served: the current one and the previous one (an actor mid-fetch of it may finish).
    private var versions: [UInt64: ServedVersion] = [:]
    /// With LoRA: the adapters' layout (Welcome.lora) and the frozen base per dtype asked for, built at the first
    /// request and kept for the run (the base never changes).
    private let adapterLayout: AdapterLayout?
    private var frozenBase: [DType: WeightSnapshot] = [:]
    /// The frozen base and late merged versions are built off the network thread (see `SnapshotBuilds`), and the
    /// requests for them wait here meanwhile.
    private let builds = SnapshotBuilds()
    private var awaitingBuild: [(request: SnapshotRequest, identity: [UInt8], peer: String)] = []
    /// Merged full snapshots are built with each version only while an actor that needs them is connected.
    private var mergedWanted: Bool { adapterLayout == nil || peers.values.contains { !$0.appliesAdapters } }
    private var lastNoticeSent: UInt64?
    var completedSteps: Int { pipeline.completedSteps }
    private let trainer = TrainerThread()
    private var training: Bool { pipeline.training != nil }
    public private(set) var summary = LearnerSummary()
    private var stopRequested: Bool { stopFlag.isSet }

    public init(options: LearnerOptions, compute: LearnerCompute,
                promptsForStep: @escaping (Int) -> [(id: String, tokens: [Int32])], logger: Logger) throws {
        self.options = options
        self.compute = compute
        self.promptsForStep = promptsForStep
        log = logger
        pipeline = StepPipeline(config: .init(steps: options.steps, startStep: options.startStep,
                                              promptsPerStep: options.promptsPerStep, maxLag: options.maxLag))
        stall = StallWatch(intervalMs: UInt64(max(1, options.stallReportMs)), now: 0)
        // Task ids start at startStep << 32 (readable in logs). Two incarnations resumed from the same checkpoint
        // issue the same ids: the incarnation on every envelope keeps their groups apart.
        ledger = TaskLedger(config: .init(groupSize: UInt32(options.groupSize),
                                          heartbeatTimeoutMs: UInt64(options.heartbeatTimeoutMs),
                                          taskTimeoutMs: UInt64(options.taskTimeoutMs), maxLag: UInt64(options.maxLag)),
                            firstTaskId: UInt64(options.startStep) << 32 | 1)
        context = try ZMQContext()
        peerGuard = PeerGuard(limits: options.limits, curve: options.curve != nil)
        groupCheck = GroupCheck(vocabSize: compute.vocabSize)
        adapterLayout = compute.adapterLayout
    }

    /// Set from any thread (e.g. a SIGINT/SIGTERM handler): finish the current step, tell actors to stop.
    public let stopFlag = StopFlag()

    /// Serves until every step is trained and actors have been told, then returns.
    public func run() throws -> LearnerSummary {
        try bindSockets()
        defer { trainer.stop(); builds.wait(); for s in [work, notices, weights] { s?.close() }; context.shutdown(); zap?.stop() }
        try publish(version: UInt64(options.startStep) + 1)
        log.info("learner \(options.runId) (incarnation \(String(options.incarnation, radix: 16))) serving on \(options.bind); \(options.steps - options.startStep) steps to go")
        var finishedAt: UInt64?
        // Resumed from a checkpoint, actors of the earlier incarnation may still be running (maybe never told the
        // run was over: it was killed while telling them). They notice the silence after their heartbeat timeout
        // and say hello again; a learner with nothing left to train waits that long for them before it exits.
        let servingSince = nowMs
        let reconnectWindowMs = options.startStep > 0 ? UInt64(options.heartbeatTimeoutMs) + 1000 : 0
        while true {
            openSteps()
            try pump(timeoutMs: 20)
            try collectTraining()
            try maybeStartTraining()
            housekeeping()
            if isFinished && finishedAt == nil {
                finishedAt = nowMs
                if completedSteps < options.steps {
                    // Stopped early (SIGINT/SIGTERM): keep what was trained.
                    try compute.checkpoint(completedSteps: completedSteps, cursor: checkpointCursor?(completedSteps) ?? DataCursor())
                    log.info("stopped at step \(completedSteps); checkpoint written; telling actors")
                } else {
                    log.info("training finished at step \(completedSteps); telling actors")
                }
                if nowMs - servingSince < reconnectWindowMs {
                    log.info("waiting \(String(format: "%.1f", Double(reconnectWindowMs - (nowMs - servingSince)) / 1000)) s for actors of the earlier incarnation to reconnect and be told")
                }
                if !departed.isEmpty {
                    log.info("also telling \(departed.keys.sorted().joined(separator: ", ")) (declared dead; if only suspended, they read it when they resume)")
                    for identity in departed.values { sendFinished(to: identity) }
                }
            }
            if let t = finishedAt, nowMs - servingSince >= reconnectWindowMs {
                // Actors leave the peer table when they say goodbye (or are declared dead).
                if peers.isEmpty || nowMs - t > UInt64(options.shutdownGraceMs) {
                    summary.ledger = ledger.counts
                    finishSecuritySummary()
                    summary.completedSteps = completedSteps
                    summary.weightVersion = version
                    // Linger 0 would drop finish notices still in libzmq's pipes when the socket closes; a second
                    // lets them reach the peers' socket buffers (a live or suspended peer accepts them at once).
                    try? work.setOption(.linger, 1000)
                    return summary
                }
            }
        }
    }

    private func securityHousekeeping() {
        if let access = options.curve?.access {
            for d in access.drainDenials() {
                limitedLog(.warning, "denied connection from \(d.address.isEmpty ? "?" : d.address) key \(d.key?.z85 ?? "-") (\(d.mechanism)): \(d.reason)")
            }
            summary.deniedConnections = access.counters.denied
            if reloadFlag.take() { reloadAuthorizedKeys(access) }
        } else if reloadFlag.take() {
            log.notice("SIGHUP: nothing to reload (no CURVE keys)")
        }
        if let at = noticesRebindAt, nowMs >= at {
            do {
                let s = try makeNoticeSocket()
                try s.bind(options.bind.notices)
                notices = s
                noticesRebindAt = nil
                sendNotice()
            } catch {
                noticesRebindAt = nowMs + 500
                log.warning("notice socket not bound again yet (\(error)); retrying")
            }
        }
    }

    private func reloadAuthorizedKeys(_ access: CurveAccess) {
        guard let reload = reloadKeys else { return }
        let keys: AuthorizedKeys
        do { keys = try reload() } catch {
            log.error("authorized keys not reloaded (keeping the \(access.authorized.count) current ones): \(error)")
            return
        }
        let before = access.authorized
        let revoked = access.replace(with: keys)
        log.notice("authorized keys reloaded: \(keys.count) keys, \(revoked.count) revoked\(revoked.isEmpty ? "" : ": " + revoked.map { "\(before.label($0) ?? "?") \($0.short)" }.joined(separator: ", "))")
        guard !revoked.isEmpty else { return }
        for key in revoked {
            for actor in peerGuard.actors(of: key.z85) {
                let requeued = forget(actor: actor)
                log.warning("actor \(actor) cut off: its key \(before.label(key) ?? "?") \(key.short) was revoked; tasks \(requeued) re-issued")
            }
            // Its connections on the ROUTERs end now (a reconnect fails the handshake); anything still queued
            // from it is dropped by `admit`, since the key is no longer listed.
            for fd in peerGuard.connections(of: key.z85) { ZMQSocket.cutConnection(fd: fd) }
        }
        // The PUB's subscribers cannot be told apart: close it (every subscriber drops off and reconnects, the
        // revoked ones fail the handshake) and bind it again once libzmq has released the address.
        notices.close()
        noticesRebindAt = nowMs + 200
        dispatchAll()
    }

    /// Actors whose values the learner's own forward contradicted (`verify_rewards`): named, counted, banned
    /// (with CURVE: their key, so every actor of that key), their tasks re-issued and connections cut.
    private func banFlagged(_ flagged: [FlaggedGroup]) {
        for f in flagged {
            summary.invalidGroups[f.actorId, default: 0] += 1
            pipeline.untrained(promptIndex: f.promptIndex)
            summary.trainedPrompts = pipeline.trainedPrompts
            log.error("misbehaving actor \(f.actorId)\(keyNote(peerGuard.key(of: f.actorId))): its group for task \(f.taskId) failed verification: \(f.detail); group dropped, actor banned")
            let key = peerGuard.key(of: f.actorId)
            peerGuard.ban(actor: f.actorId)
            let victims = key.map { peerGuard.actors(of: $0) } ?? [f.actorId]
            for a in Set(victims + [f.actorId]) { forget(actor: a, keepGuard: true) }
            if let key { for fd in peerGuard.connections(of: key) { ZMQSocket.cutConnection(fd: fd) } }
        }
        if !flagged.isEmpty { dispatchAll() }
    }

    private func finishSecuritySummary() {
        summary.deniedConnections = options.curve?.access.counters.denied ?? 0
        summary.droppedMessages += peerGuard.dropped
        summary.bannedActors = peerGuard.bannedActors.sorted()
        summary.errorRepliesSuppressed = peerGuard.repliesSuppressed
        summary.logLinesSuppressed = peerGuard.logLinesSuppressed
    }

    private var isFinished: Bool { completedSteps >= options.steps || (stopRequested && !training) }

    // MARK: Sockets

    private func bindSockets() throws {
        if let c = options.curve {
            // Before any CURVE socket binds: without a handler libzmq would admit every key.
            zap = try ZAPHandler(context: context, access: c.access)
        }
        work = try ZMQSocket(context, .router)
        notices = try makeNoticeSocket()
        weights = try ZMQSocket(context, .router)
        for s in [work!, weights!] {
            try s.setOption(.linger, 0)
            try s.setMaxMessageSize(Int64(options.maxMessageBytes))
            try s.setOption(.receiveHighWaterMark, options.limits.receiveHighWaterMark)
            if let c = options.curve { try s.setCurveServer(secretKey: c.keyPair.secretKey) }
        }
        // A reconnecting actor (same id, new connection) replaces its half-dead old connection.
        try work.setOption(.routerHandover, 1)
        try weights.setOption(.routerHandover, 1)
        // Snapshot chunks are large: let a few sit in the pipe per peer (credits bound it anyway).
        try weights.setOption(.sendHighWaterMark, 64)
        try work.bind(options.bind.work)
        try notices.bind(options.bind.notices)
        try weights.bind(options.bind.weights)
        if let c = options.curve {
            log.info("CURVE on all sockets: learner key \(c.keyPair.publicKey), \(c.access.authorized.count) authorized actor keys")
        }
    }

    /// The PUB socket (made again when a key is revoked: closing it drops every subscriber, and the revoked one
    /// fails the handshake when it reconnects).
    private func makeNoticeSocket() throws -> ZMQSocket {
        let s = try ZMQSocket(context, .pub)
        try s.setOption(.linger, 0)
        try s.setMaxMessageSize(Int64(options.maxMessageBytes))
        if let c = options.curve { try s.setCurveServer(secretKey: c.keyPair.secretKey) }
        return s
    }

    private func send(_ socket: ZMQSocket, to identity: [UInt8], _ body: Message) {
        let bytes = WireCodec.encode(.stamped(sender: "learner", body, incarnation: options.incarnation))
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
                    let who = String(decoding: frames.first ?? [], as: UTF8.self)
                    refuse(frames.first ?? [], socket, "\(sockName) message from '\(who)': expected 1 frame after the identity, got \(frames.count - 1)", .malformed, field: "")
                    continue
                }
                let identity = frames[0]
                let peer = String(decoding: identity, as: UTF8.self)
                let meta = socket.lastPeer
                if case .drop(let why) = peerGuard.admit(actor: peer, key: meta.userId,
                                                         listed: options.curve?.access.isAuthorized(userId: meta.userId) ?? true) {
                    limitedLog(.warning, "dropped a \(sockName) message: \(why)")
                    continue
                }
                peerGuard.saw(key: meta.userId, fd: meta.fd)
                let env: Envelope
                do { env = try WireCodec.decode(frames[1], maxBytes: options.maxMessageBytes) } catch {
                    refuse(identity, socket, "\(sockName) message from '\(peer)': \(error)", error.code, field: error.field)
                    continue
                }
                if i == 0 { handleWork(env, identity: identity, peer: peer, key: meta.userId) } else { handleWeights(env, identity: identity, peer: peer) }
            }
        }
    }

    private func refuse(_ identity: [UInt8], _ socket: ZMQSocket, _ what: String, _ code: ErrorCode, field: String) {
        summary.malformed += 1
        summary.refusedMessages.append(what)
        if summary.refusedMessages.count > options.limits.keptRefusals { summary.refusedMessages.removeFirst() }
        limitedLog(.error, "refused \(what)")
        replyError(identity, socket, ErrorMessage(code: code, message: what, field: field))
    }

    /// An `Error` reply, unless this peer (or everyone together) has had its share this second.
    private func replyError(_ identity: [UInt8], _ socket: ZMQSocket, _ e: ErrorMessage) {
        guard !identity.isEmpty, peerGuard.mayReply(to: String(decoding: identity, as: UTF8.self), now: nowMs) else { return }
        send(socket, to: identity, .error(e))
    }

    /// A log line about a peer's misbehaviour, within the log rate limit (the next line says how many were not).
    private func limitedLog(_ level: Logger.Level, _ line: @autoclosure () -> String) {
        let (ok, suppressed) = peerGuard.mayLog(now: nowMs)
        guard ok else { return }
        log.log(level: level, "\(line())\(suppressed > 0 ? " (\(suppressed) similar lines suppressed)" : "")")
    }

    private func handleWork(_ env: Envelope, identity: [UInt8], peer: String, key: String?) {
        let now = nowMs
        if case .hello(let h) = env.body {
            let known = ledger.actorIds.contains(peer)
            if let why = peerGuard.hello(actor: peer, key: key, admitted: ledger.actorIds.count, known: known) {
                limitedLog(.warning, "hello from '\(peer)' refused: \(why)")
                replyError(identity, work, ErrorMessage(code: .internal, message: why, field: "hello"))
                return
            }
            if peers[peer] == nil && !known { summary.actorsSeen += 1 }
            departed.removeValue(forKey: peer)
            let requeued = ledger.hello(actorId: peer, now: now)
            if !requeued.isEmpty { log.info("actor \(peer) restarted: tasks \(requeued) re-issued") }
            // A repeated Hello of the same process (queued while this learner was not yet bound) is said once.
            let again = peers[peer] != nil && actorBoard.pid(of: peer) == h.pid
            let adapters = adapterLayout != nil && h.appliesAdapters
            peers[peer] = Peer(identity: identity, appliesAdapters: adapters)
            actorBoard.hello(id: peer, host: h.hostname, pid: h.pid, version: h.weightVersion, now: now)
            let weightsNote = adapterLayout == nil ? "" : adapters ? ", LoRA: frozen base + adapter versions" : ", LoRA: merged full versions (does not apply adapters)"
            log.log(level: again ? .debug : .info, "actor \(peer) joined (host \(h.hostname), pid \(h.pid), batch \(h.maxBatchSequences), weights v\(h.weightVersion)\(weightsNote)\(keyNote(key)))")
            send(work, to: identity, .welcome(Welcome(
                runId: options.runId, currentWeightVersion: version, modelConfigJson: compute.modelConfigJSON,
                heartbeatIntervalMs: UInt32(options.heartbeatIntervalMs), heartbeatTimeoutMs: UInt32(options.heartbeatTimeoutMs),
                lora: adapters ? adapterLayout?.spec : nil)))
            if adapterLayout != nil {
                // Start building what it will ask for first, so that its first request finds it built (or nearly).
                let prepare = SnapshotRequest(version: version, kind: adapters ? .frozenBase : .full)
                _ = try? snapshot(for: prepare, version: version, peer: peer)
            }
            return
        }
        if case .statusRequest = env.body { return send(work, to: identity, statusReply()) }
        guard ledger.heartbeat(actorId: peer, now: now) else {
            // Not (or no longer) known: declared dead, or this learner restarted. It must say hello again; a
            // group it sent is resent by the actor after its new welcome.
            replyError(identity, work, ErrorMessage(code: .unknownPeer, message: "say hello first", field: env.body.fieldName))
            return
        }
        peers[peer]?.identity = identity
        // A group or failure report for a task of an earlier incarnation of this learner (the actor did not notice
        // the restart yet): its task id means nothing here (ids restart with the resumed step), so it is refused.
        if env.learnerIncarnation != 0 && env.learnerIncarnation != options.incarnation {
            switch env.body {
            case .rolloutGroup(let g):
                summary.otherIncarnation += 1
                send(work, to: identity, .ack(Ack(taskId: g.taskId, status: .rejected,
                    detail: "task \(g.taskId) was issued by an earlier learner incarnation (\(String(env.learnerIncarnation, radix: 16))); this one is \(String(options.incarnation, radix: 16))")))
                return
            case .taskFailure:
                summary.otherIncarnation += 1
                return
            default: break
            }
        }
        switch env.body {
        case .heartbeat(let h):
            actorBoard.heard(id: peer, version: h.weightVersion, now: now)
            // Tasks the actor no longer holds (failed there, or their work item was lost) go back to the queue
            // now rather than at the task timeout.
            let lost = ledger.reconcile(actorId: peer, holding: h.tasksInProgress, now: now,
                                        graceMs: UInt64(options.heartbeatTimeoutMs))
            if !lost.isEmpty {
                log.warning("actor \(peer) no longer holds tasks \(lost): re-issued")
            }
            let credits = ledger.reconcileCredits(actorId: peer, outstanding: h.creditsOutstanding, holding: h.tasksInProgress,
                                                  now: now, graceMs: UInt64(options.heartbeatTimeoutMs))
            if let c = credits {
                log.log(level: c.after > c.before ? .warning : .info,
                        "actor \(peer) has \(c.after) credits outstanding, this learner counted \(c.before) (a work request or work item was lost with a connection): now \(c.after)")
            }
            if (!lost.isEmpty || credits != nil) && !isFinished { dispatchAll() }
        case .workRequest(let r):
            ledger.addCredits(actorId: peer, credits: r.credits, now: now)
            if isFinished { sendFinished(to: identity) } else { dispatchAll() }
        case .rolloutGroup(var g):
            g.actorId = peer  // the socket identity is authoritative
            accept(g, identity: identity)
        case .taskFailure(let f):
            taskFailed(f, actor: peer)
        case .goodbye(let b):
            log.info("actor \(peer) left: \(b.reason)")
            let requeued = forget(actor: peer)
            if !requeued.isEmpty { log.info("tasks \(requeued) of \(peer) re-issued") }
            dispatchAll()
        default:
            refuse(identity, work, "unexpected \(env.body.fieldName) from '\(peer)' on the work socket", .malformed, field: env.body.fieldName)
        }
    }

    /// An actor leaves this learner's tables (goodbye, revoked key, ban, declared dead): its in-flight tasks are
    /// re-queued (returned) and it is no longer told the run is over. A banned actor stays known to `peerGuard`
    /// (`keepGuard`), or its ban would be forgotten with it.
    @discardableResult
    private func forget(actor: String, keepGuard: Bool = false) -> [UInt64] {
        let requeued = ledger.goodbye(actorId: actor)
        peers.removeValue(forKey: actor)
        departed.removeValue(forKey: actor)
        actorBoard.left(id: actor)
        if !keepGuard { peerGuard.forget(actor: actor) }
        return requeued
    }

    /// Tells an actor the run is over. The heartbeat before it carries the final version, so the actor fetches
    /// it before leaving (messages on one socket arrive in order; the PUB notice might not have).
    private func sendFinished(to identity: [UInt8]) {
        send(work, to: identity, .heartbeat(Heartbeat(weightVersion: version)))
        send(work, to: identity, .noWork(NoWork(retryAfterMs: 1000, finished: true,
                                                reason: completedSteps >= options.steps ? "all \(options.steps) steps trained" : "learner stopping")))
    }

    // MARK: Tasks (credits, deadlines, re-issue, dedupe)

    /// Creates the tasks of every step that may be sampled now: steps up to `maxLag` ahead of the one being
    /// collected, so with maxLag = 0 every group is sampled by the weights it trains.
    private func openSteps() {
        guard !stopRequested else { return }
        let steps = pipeline.stepsToOpen()
        for s in steps {
            for (k, pr) in promptsForStep(s).enumerated() {
                let seed = SingleProcessRun.taskSeed(runSeed: options.seed, step: s, index: k)
                let id = ledger.submit(WorkItem(taskId: 0, promptId: pr.id, promptTokens: pr.tokens.map { UInt32(bitPattern: $0) },
                                                groupSize: UInt32(options.groupSize), sampling: options.sampling, seed: seed,
                                                minWeightVersion: 0, deadlineMs: UInt32(min(options.taskTimeoutMs, Int(UInt32.max)))))
                pipeline.register(taskId: id, .init(step: s, promptIndex: s * options.promptsPerStep + k, promptId: pr.id, tokens: pr.tokens))
            }
        }
        if !steps.isEmpty { dispatchAll() }
    }

    /// Hands pending tasks to every actor with credits (round-robin, in the ledger).
    private func dispatchAll() {
        for a in ledger.dispatch(now: nowMs, weightVersion: version) {
            guard let p = peers[a.actorId] else { continue }
            send(work, to: p.identity, .workItem(a.item))
            onAssign?(a.item.taskId, a.actorId)
        }
    }

    private func accept(_ g: RolloutGroup, identity: [UInt8]) {
        let invalidBefore = ledger.counts.invalid
        let check = groupCheck
        let ack = ledger.accept(g, now: nowMs, weightVersion: version, check: { check.problem($0, task: $1) })
        send(work, to: identity, .ack(ack))
        if ledger.counts.invalid > invalidBefore {
            // Not a network accident (the decoder already refused garbage): this actor sent values it cannot
            // have sampled. Named in the log and the summary; the task goes to someone else.
            summary.invalidGroups[g.actorId, default: 0] += 1
            limitedLog(.error, "misbehaving actor \(g.actorId)\(keyNote(peerGuard.key(of: g.actorId))): invalid group: \(ack.detail)")
            dispatchAll()
            return
        }
        stall.progress(now: nowMs)
        switch ack.status {
        case .accepted:
            actorBoard.accepted(id: g.actorId, version: g.weightVersion, tokens: Int(g.timings.generatedTokens),
                                decodeMs: Double(g.timings.decodeMs + g.timings.prefillMs), now: nowMs)
            pipeline.accepted(g)
            onGroup?(g)
        case .duplicate:
            limitedLog(.info, "\(g.actorId): \(ack.detail); dropped")
        default:
            limitedLog(.warning, "\(g.actorId): group \(ack.status): \(ack.detail)")
            dispatchAll()
        }
    }

    /// An actor's engine failed on a task: re-issue it, or quarantine it once it failed on two actors.
    private func taskFailed(_ f: TaskFailure, actor: String) {
        let outcome = ledger.fail(taskId: f.taskId, actorId: actor, now: nowMs)
        let what = pipeline.info(f.taskId).map { "prompt \($0.promptId) (schedule index \($0.promptIndex), step \($0.step + 1))" } ?? "task \(f.taskId)"
        switch outcome {
        case .reissued:
            log.warning("\(actor) failed \(what): \(f.error); re-issued to another attempt")
            if !isFinished { dispatchAll() }
        case .counted:
            log.warning("\(actor) failed \(what) after it was re-issued: \(f.error)")
        case .quarantined(let actors):
            _ = pipeline.quarantine(taskId: f.taskId)
            summary.quarantinedPrompts.append(what)
            log.error("quarantined \(what): sampling failed on \(actors.joined(separator: ", ")) (last error: \(f.error)); it is not issued again and its step trains without it")
        case .ignored:
            log.info("\(actor) failed task \(f.taskId), which is no longer open: \(f.error)")
        }
    }

    // MARK: Training

    private func maybeStartTraining() throws {
        guard !training, !stopRequested, let next = try pipeline.nextToTrain() else { return }
        let s = next.step, groups = next.groups
        let compute = self.compute
        let cursor = checkpointCursor?(s + 1) ?? DataCursor()
        let doCheckpoint = options.checkpointEvery > 0 && (s + 1) % options.checkpointEvery == 0 || s + 1 == options.steps
        let dtype = options.weightDType, chunk = options.chunkBytes
        let nextVersion = UInt64(s) + 2
        let merged = mergedWanted
        // Which prompts of the schedule this step trained (and gave up on): one step of the run's history, so a
        // resumed or chaotic run can be checked for prompts trained twice or never (scripts/chaos).
        let indices = groups.map(\.promptIndex)
        let quarantined = pipeline.quarantined.filter { $0.step == s }.map(\.promptIndex)
        let quarantinedSoFar = pipeline.quarantined.count
        let record = recordStep
        trainer.submit {
            var metrics = try compute.train(step: s, groups: groups)
            metrics.record.updateLearnerStats { stats in
                stats.promptIndices = indices
                if !quarantined.isEmpty { stats.quarantinedPromptIndices = quarantined }
                stats.quarantinedPrompts = quarantinedSoFar  // cumulative
            }
            // Taken here, on the training thread that wrote them, before the next step can start.
            let flagged = compute.takeFlaggedGroups()
            let snap = try ServedVersion.build(compute, version: nextVersion, dtype: dtype, chunkBytes: chunk, merged: merged)
            record?(metrics)
            if doCheckpoint { try compute.checkpoint(completedSteps: s + 1, cursor: cursor) }
            return (metrics, snap, flagged)
        }
        summary.trainedPrompts = pipeline.trainedPrompts
    }

    private func collectTraining() throws {
        guard training, let result = trainer.poll() else { return }
        switch result {
        case .success(let (metrics, snap, flagged)):
            pipeline.finishedTraining()
            stall.progress(now: nowMs)
            stepBoard.add(metrics)
            banFlagged(flagged)
            onStep?(metrics)
            install(snap)
        case .failure(let e):
            throw e
        }
    }

    // MARK: Weights (Clone pattern server)

    private func publish(version v: UInt64) throws {
        install(try ServedVersion.build(compute, version: v, dtype: options.weightDType, chunkBytes: options.chunkBytes,
                                        merged: mergedWanted))
    }

    private func install(_ served: ServedVersion) {
        versions[served.version] = served
        // Keep the current and the previous version: an actor mid-fetch of the previous one may finish it.
        for v in versions.keys where v + 1 < served.version { versions[v] = nil; builds.discard(.merged(v)) }
        version = served.version
        summary.publishedAt[served.version] = Date()
        sendNotice()
        let sizes = [served.adapterSnapshot.map { "adapters \($0.totalBytes) bytes in \($0.nChunks) chunks" },
                     served.full.map { "\(served.adapters == nil ? "" : "merged ")\($0.totalBytes) bytes in \($0.nChunks) chunks" }]
        log.debug("weights v\(served.version) published (\(sizes.compactMap { $0 }.joined(separator: "; ")))")
    }

    private func sendNotice() {
        guard let served = versions[version], noticesRebindAt == nil else { return }
        do { _ = try notices.send(frames: [WireCodec.encode(.stamped(sender: "learner", .weightNotice(served.notice), incarnation: options.incarnation))], dontWait: true) } catch {
            log.warning("notice v\(version) not sent: \(error)")
        }
        lastNoticeSent = nowMs
    }

    private func handleWeights(_ env: Envelope, identity: [UInt8], peer: String) {
        guard case .snapshotRequest(let r) = env.body else {
            return refuse(identity, weights, "unexpected \(env.body.fieldName) from '\(peer)' on the weights socket", .malformed, field: env.body.fieldName)
        }
        // Weights only for actors that were welcomed and are alive (and, with CURVE, only over their own key:
        // `admit` checked that the key is the one this id said hello with).
        guard peers[peer] != nil else {
            summary.droppedMessages += 1
            limitedLog(.warning, "snapshot request from '\(peer)', which is not a welcomed actor: refused")
            replyError(identity, weights, ErrorMessage(code: .unknownPeer, message: "say hello first", field: "snapshot_request"))
            return
        }
        serve(r, identity: identity, peer: peer)
    }

    /// Answers a snapshot request with its chunks (or an error). A request for a snapshot still being built waits
    /// in `awaitingBuild` and is answered by `serveAwaitingBuilds` once it is built.
    private func serve(_ r: SnapshotRequest, identity: [UInt8], peer: String) {
        let v = r.version == 0 ? version : r.version
        let snap: WeightSnapshot
        do {
            switch try snapshot(for: r, version: v, peer: peer) {
            case .snapshot(let s): snap = s
            case .preparing:
                log.debug("\(r.kind) snapshot for \(peer) is being built; its request waits")
                // The actor asks again after its stall time: keep its newest request only (answering each would
                // send the same chunks twice, and a duplicate chunk restarts its fetch).
                awaitingBuild.removeAll { $0.peer == peer }
                awaitingBuild.append((r, identity, peer))
                return
            case .notServed:
                send(weights, to: identity, .error(ErrorMessage(code: .unknownVersion,
                    message: "version \(v) is not served (current \(version))", field: "snapshot_request.version")))
                return
            case .refused(let e): return replyError(identity, weights, e)
            }
        } catch {
            log.error("weights for \(peer) (\(r.kind) v\(v)) not built: \(error)")
            return replyError(identity, weights, ErrorMessage(code: .internal, message: "\(error)", field: "snapshot_request"))
        }
        let first = Int(r.firstChunk)
        let last = min(snap.nChunks, first + Int(min(r.credits, 64)))
        guard first < snap.nChunks else {
            send(weights, to: identity, .error(ErrorMessage(code: .malformed,
                message: "first_chunk \(first) >= n_chunks \(snap.nChunks)", field: "snapshot_request.first_chunk")))
            return
        }
        for i in first..<last {
            // Header frame + the chunk's bytes as a second, zero-copy frame straight from the snapshot's storage.
            let env = Envelope(sender: "learner", sentUnixMs: 0, body: .snapshotChunk(snap.chunkHeader(i)), learnerIncarnation: options.incarnation)
            do {
                _ = try weights.send(identity, more: true)
                _ = try weights.send(WireCodec.encode(env), more: true)
                _ = try weights.sendZeroCopy(snap.chunkData(i))
                actorBoard.sent(id: peer, bytes: snap.chunkData(i).count)
            } catch {
                log.warning("chunk \(i) of v\(v) to \(peer) not sent: \(error)")
            }
        }
    }

    /// The snapshot a request asks for: the frozen base, a version's adapters, or a version's full weights (with
    /// LoRA: merged; built now if no actor needed them when the version was published). Those two are built on
    /// their own thread (`.preparing` until done). Refuses a request this run cannot answer (adapters or base
    /// without LoRA); throws when a build failed.
    private func snapshot(for r: SnapshotRequest, version v: UInt64, peer: String) throws -> SnapshotLookup {
        switch r.kind {
        case .frozenBase, .adapter:
            guard adapterLayout != nil else {
                return .refused(ErrorMessage(code: .malformed, message: "this run trains no LoRA adapters: there is no \(r.kind) snapshot",
                                             field: r.kind == .adapter ? "snapshot_request.adapter" : "snapshot_request.frozen_base"))
            }
            guard r.kind == .frozenBase else { return versions[v]?.adapterSnapshot.map { .snapshot($0) } ?? .notServed }
            let dtype = r.dtype == .unspecified ? options.weightDType : r.dtype
            if let b = frozenBase[dtype] { return .snapshot(b) }
            let compute = self.compute, chunk = options.chunkBytes
            // Once per dtype for the whole run: a copy of the base (2.5 GB F32 for Qwen2.5-0.5B).
            guard let b = try builds.result(.frozenBase(dtype), { try compute.frozenBaseSnapshot(dtype: dtype, chunkBytes: chunk) }) else {
                return .preparing
            }
            frozenBase[dtype] = b
            log.info("frozen base built for actors that apply adapters: \(b.totalBytes) bytes \(dtype) in \(b.nChunks) chunks")
            return .snapshot(b)
        case .full:
            guard let served = versions[v] else { return .notServed }
            if let f = served.full { return .snapshot(f) }
            guard let a = served.adapters else { return .notServed }
            // An actor that does not apply adapters joined after this version was published without a merged copy.
            let compute = self.compute, dtype = options.weightDType, chunk = options.chunkBytes
            guard let f = try builds.result(.merged(v), { try compute.mergedSnapshot(a, dtype: dtype, chunkBytes: chunk) }) else {
                return .preparing
            }
            versions[v]?.full = f
            log.info("merged weights v\(v) built for \(peer), which does not apply adapters")
            return .snapshot(f)
        }
    }

    private enum SnapshotLookup {
        case snapshot(WeightSnapshot)
        case preparing
        case notServed
        case refused(ErrorMessage)
    }

    /// Requests that waited for a build, answered once something was built (those still waiting queue again).
    private func serveAwaitingBuilds() {
        guard !awaitingBuild.isEmpty, builds.takeNews() else { return }
        let waiting = awaitingBuild
        awaitingBuild = []
        for w in waiting where peers[w.peer] != nil { serve(w.request, identity: w.identity, peer: w.peer) }
    }

    // MARK: Timers

    private func housekeeping() {
        serveAwaitingBuilds()
        let now = nowMs
        // Paranoid Pirate: an actor silent for the timeout is dead; its tasks go to others.
        let expiry = ledger.expire(now: now)
        for name in expiry.deadActors {
            log.warning("actor \(name) missed its heartbeats: declared dead")
            let identity = peers[name]?.identity
            forget(actor: name)  // the ledger has already re-queued its tasks
            // If only suspended, it reads the finish notice when it resumes.
            if let identity { departed[name] = identity }
        }
        if !expiry.reissued.isEmpty {
            log.info("tasks \(expiry.reissued) re-issued")
            dispatchAll()
        }
        for (name, p) in peers where p.lastHeartbeatSent.map({ now >= $0 && now - $0 >= UInt64(options.heartbeatIntervalMs) }) ?? true {
            // Once finished, the finish notice (which carries its own heartbeat) replaces the plain heartbeat.
            if isFinished { sendFinished(to: p.identity) } else { send(work, to: p.identity, .heartbeat(Heartbeat(weightVersion: version))) }
            peers[name]?.lastHeartbeatSent = now
        }
        // Late subscribers miss a notice sent before they joined (PUB drops): repeat the current one.
        if lastNoticeSent.map({ now >= $0 && now - $0 > 1000 }) ?? true { sendNotice() }
        reportStall()
        securityHousekeeping()
        publishStatusIfDue()
    }

    /// Never a silent stall: with tasks outstanding, no step training and no group arriving, say so every
    /// `stallReportMs` with what is outstanding and where.
    private func reportStall() {
        let waiting = !isFinished && !training && (ledger.pendingCount > 0 || ledger.inFlightCount > 0)
        guard let silentMs = stall.check(now: nowMs, waiting: waiting) else { return }
        summary.stallReports += 1
        let p = pipeline.progress(step: completedSteps)
        let held = ledger.actorIds.map { "\($0): \(ledger.tasksInFlight(actorId: $0).count) tasks, \(ledger.credits(actorId: $0) ?? 0) credits" }
        log.warning("no group for \(silentMs / 1000) s while waiting for step \(completedSteps + 1): \(p.accepted)/\(options.promptsPerStep) groups in, \(ledger.pendingCount) tasks queued, \(ledger.inFlightCount) in flight; actors: \(held.isEmpty ? "none connected" : held.joined(separator: "; "))")
    }
}

// MARK: Security (CURVE keys, revocation, bans, limits; the pure rules are `PeerGuard` and `GroupCheck`)

extension LearnerServer {
    /// " (key LABEL ABCDEFGH…)" for log lines, or "" without CURVE.
    func keyNote(_ key: String?) -> String {
        guard let key else { return "" }
        return " (key \(options.curve?.access.label(userId: key) ?? "?") \(key.prefix(8))…)"
    }
}

/// A request raised from a signal handler and taken once by the network loop (SIGHUP → reload the keys).
public final class RequestFlag: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var value = false
    public init() {}
    public func raise() { lock.lock(); value = true; lock.unlock() }
    /// True once per `raise()`.
    public func take() -> Bool { lock.lock(); defer { value = false; lock.unlock() }; return value }
}

/// Snapshots the network thread needs but must not build itself: copying and hashing a 0.5B model's 2.5 GB took
/// 30 s on a loaded host, past the actors' heartbeat timeout. Each is built once on its own thread; the network
/// loop asks `result` again (on the actor's next request) until it is there. The builds read only the frozen base
/// and a version's kept adapter values, never what the training thread writes.
final class SnapshotBuilds: @unchecked Sendable {  // all state behind `cond`
    enum Key: Hashable { case frozenBase(DType), merged(UInt64) }
    private let cond = NSCondition()
    private var running: Set<Key> = []
    private var finished: [Key: Result<WeightSnapshot, Error>] = [:]
    private var news = false

    /// Whether a build finished since the last call.
    func takeNews() -> Bool { cond.lock(); defer { news = false; cond.unlock() }; return news }

    /// The built snapshot (taken: asked again, it is built again), nil while it is being built (started by the
    /// first call); throws what the build threw.
    func result(_ key: Key, _ build: @escaping () throws -> WeightSnapshot) throws -> WeightSnapshot? {
        cond.lock(); defer { cond.unlock() }
        if let r = finished.removeValue(forKey: key) { return try r.get() }
        guard !running.contains(key) else { return nil }
        running.insert(key)
        let job = UncheckedJob(build: build)
        let t = Thread { [self] in
            let r = Result { try job.build() }
            cond.lock(); running.remove(key); finished[key] = r; news = true; cond.broadcast(); cond.unlock()
        }
        t.name = "rlif-learner-snapshot"
        t.stackSize = 8 << 20
        t.start()
        return nil
    }

    /// Forgets a finished build nobody took (a merged version no longer served).
    func discard(_ key: Key) { cond.lock(); finished[key] = nil; cond.unlock() }

    /// Waits for the builds still running (the learner returns only when none uses the compute any more).
    func wait() { cond.lock(); while !running.isEmpty { cond.wait() }; cond.unlock() }

    /// The build closure captures the compute, used by this thread and the training thread: safe because both only
    /// read the frozen base (see `LearnerCompute.mergedSnapshot`).
    private struct UncheckedJob: @unchecked Sendable { let build: () throws -> WeightSnapshot }
}

/// Runs submitted jobs one at a time on a dedicated thread; the network loop polls for the result.
final class TrainerThread: @unchecked Sendable {  // all state behind `cond`
    typealias Output = (StepResult, ServedVersion, [FlaggedGroup])
    private let cond = NSCondition()
    private var job: (() throws -> Output)?
    private var result: Result<Output, Error>?
    private var stopping = false
    /// Whether the thread was started. Not the `Thread` itself: its block holds `self` while it runs, and a stored
    /// Thread made a cycle (TrainerThread → Thread → block → TrainerThread) that kept every stopped trainer alive —
    /// LeakSanitizer's finding in `scripts/test --sanitize address`; held by
    /// `StepPipelineTests.aStoppedTrainerThreadIsFreed`.
    private var started = false

    func submit(_ body: @escaping () throws -> Output) {
        cond.lock()
        if !started {
            let t = Thread { [self] in loop() }
            t.name = "rlif-learner-train"
            t.stackSize = 8 << 20
            started = true
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
