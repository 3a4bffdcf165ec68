import Foundation
import Logging
import Scheduling
import Transport
import Wire

/// Settings of one actor process.
public struct ActorOptions: Sendable {
    public var learner: Endpoints
    public var actorId: String
    /// Sequences decoded together (reported to the learner in Hello).
    public var batchSequences: Int = 16
    /// Resend an unacknowledged group after this long.
    public var ackTimeoutMs: Int = 3000
    /// Snapshot chunks requested at once (credit-based flow control on the weights socket).
    public var chunkCredits: Int = 4
    /// Longest wait between reconnection attempts (exponential backoff from 250 ms).
    public var maxBackoffMs: Int = 8000
    /// Give up (exit with an error) after this long without reaching the learner; 0 = never.
    public var giveUpAfterMs: Int = 0
    /// Largest message accepted (weights arrive in chunks, so this bounds one chunk or group).
    public var maxMessageBytes: Int = 64 << 20
    /// CURVE: the learner's public key and this actor's key pair (its public key must be in the learner's
    /// authorized keys). nil = plain, which a CURVE learner refuses at the handshake.
    public var curve: (learnerKey: CurveKey, keyPair: CurveKeyPair)?
    /// Fault hook for tests and scripts/chaos: sampling a task whose prompt id is listed fails on purpose
    /// (`rlif actor` reads it from `RLIF_DEBUG_FAIL_PROMPTS`, comma-separated ids such as `train:17`).
    public var failPromptIds: Set<String> = []

    public init(learner: Endpoints, actorId: String) {
        self.learner = learner
        self.actorId = actorId
    }
}

public struct ActorError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// What an actor did, for logs and tests.
public struct ActorSummary: Sendable {
    public var groupsSent = 0
    public var groupsAcked = 0
    public var resends = 0
    public var weightVersionsInstalled: [UInt64] = []
    /// When each version finished installing (for weight-propagation measurements).
    public var installedAt: [UInt64: Date] = [:]
    /// Snapshot bytes received (every snapshot, the frozen base included), and generated tokens per second of the
    /// last group sent (for /metrics).
    public var weightBytesReceived = 0
    /// Bytes of each weight version as received: the full snapshot, or with adapters applied here its adapters.
    public var versionBytesReceived: [UInt64: Int] = [:]
    /// Bytes of frozen bases received (LoRA with adapters applied here: one per learner incarnation).
    public var frozenBaseBytesReceived = 0
    public var tokensPerSecond = 0.0
    public var reconnects = 0
    public var finalVersion: UInt64 = 0
    /// Learner restarts noticed (a new incarnation), and what was dropped with the old one.
    public var learnerRestarts = 0
    public var groupsDroppedOnRestart = 0
    public var tasksDroppedOnRestart = 0
    /// Tasks whose sampling failed here (reported to the learner with TaskFailure).
    public var tasksFailed = 0
}

/// An actor's network side (zguide Paranoid Pirate worker + Clone client), on the calling thread, with the
/// sampling on a worker thread so heartbeats keep flowing while a group is being decoded.
///
/// Sockets: DEALER → learner work ROUTER (hello, heartbeats, work requests, groups; welcome, items, acks),
/// SUB ← learner PUB (weight notices), DEALER → learner weights ROUTER (snapshot requests; chunks).
/// Finished groups are kept until acknowledged and resent after `ackTimeoutMs` and after a reconnect, so a lost
/// message never loses a group (the learner dedupes by task id). Every learner message carries the learner's
/// incarnation: a new one means the learner restarted (e.g. `--resume` after a crash), and the actor drops what
/// belonged to the old one (unacknowledged groups, queued tasks, its weights' version), says Hello again and
/// fetches the new incarnation's weights before it samples again. Liveness uses the monotonic clock only.
public final class ActorClient {
    public let options: ActorOptions
    let engine: RolloutEngine
    let log: Logger
    let mailbox = ActorMailbox()

    private let context: ZMQContext
    private var work: ZMQSocket!
    private var notices: ZMQSocket!
    private var weights: ZMQSocket!

    // Connection state. Times are monotonic milliseconds (`clock`); `never` = not yet.
    private let clock = MonotonicClock()
    private var now: UInt64 { clock.nowMs }
    private static let never = UInt64.max
    private var welcomed = false
    private var configuredJSON: String?
    private var configuredAdapters: AdapterSpec?
    private var lastHeard: UInt64 = 0
    private var lastHelloSent = never
    private var heartbeatIntervalMs: UInt64 = 1000
    private var heartbeatTimeoutMs: UInt64 = 10_000
    private var lastHeartbeatSent = never
    private var backoffMs = 250
    private var firstContact: UInt64?
    /// The learner incarnation this actor talks to (0 = none yet); `generation` counts the ones seen.
    private var incarnations = IncarnationTracker()
    private var incarnation: UInt64 { incarnations.current }
    private var generation = 0

    // Weights (pure state machine) and the version the worker stamps groups with.
    private var weightSync: WeightSync
    private let held = VersionCell()
    var heldVersion: UInt64 { held.value }

    // Work.
    private var creditsOutstanding = 0
    private var waiting: [WorkItem] = []          // received, need newer weights first
    private var unacked: [UInt64: (bytes: [UInt8], sent: UInt64)] = [:]
    private var retryAfter: UInt64 = 0
    private var finished = false
    /// Finished, then silent past the heartbeat timeout: no learner to wait for.
    private var learnerGone = false
    public private(set) var summary = ActorSummary() { didSet { onSummary?(summary) } }
    /// Called on the actor's thread whenever `summary` changes (e.g. to update Prometheus gauges).
    public var onSummary: ((ActorSummary) -> Void)?

    public init(options: ActorOptions, engine: RolloutEngine, logger: Logger) throws {
        self.options = options
        self.engine = engine
        log = logger
        weightSync = WeightSync(config: .init(chunkCredits: options.chunkCredits))
        mailbox.failPromptIds = options.failPromptIds
        context = try ZMQContext()
    }

    /// Runs until the learner says the run is finished and every group has been acknowledged.
    public func run() throws -> ActorSummary {
        try connect()
        // The engine is used only by the worker thread from here on; the box carries it there.
        let box = EngineBox(engine: engine)
        let worker = Thread { [mailbox, box, held, options] in
            mailbox.runWorker(box.engine, actorId: options.actorId, version: { held.value })
        }
        worker.name = "rlif-actor-worker"
        worker.stackSize = 8 << 20
        worker.start()
        defer { mailbox.stop(); closeSockets(); context.shutdown() }

        while true {
            try pump(timeoutMs: 50)
            try handleWorkerOutputs()
            try periodic()
            // Leave only with every group acknowledged and the learner's final weights installed.
            if finished && unacked.isEmpty && mailbox.isIdle && waiting.isEmpty && weightSync.isCurrent {
                send(work, .goodbye(Goodbye(reason: "run finished")))
                log.info("run finished; \(summary.groupsAcked) groups acknowledged, weights v\(heldVersion)")
                summary.finalVersion = heldVersion
                return summary
            }
            if finished && learnerGone {
                // The learner said every step was trained and then left (this actor was suspended, or slow, past
                // its grace): what is still here belongs to steps trained without it, so nothing is lost.
                let queued = mailbox.dropQueued() + waiting.map(\.taskId)
                log.notice("run finished and the learner has left; leaving with \(unacked.count) groups unacknowledged and \(queued.count) tasks unsampled (their steps were trained without them), weights v\(heldVersion)")
                summary.finalVersion = heldVersion
                return summary
            }
        }
    }

    // MARK: Sockets

    private func connect() throws {
        work = try ZMQSocket(context, .dealer)
        try work.setRoutingId(options.actorId)
        notices = try ZMQSocket(context, .sub)
        try notices.subscribe()
        weights = try ZMQSocket(context, .dealer)
        try weights.setRoutingId(options.actorId)
        for s in [work!, notices!, weights!] {
            try s.setOption(.linger, 0)
            try s.setMaxMessageSize(Int64(options.maxMessageBytes))
            if let c = options.curve { try s.setCurveClient(serverKey: c.learnerKey, keyPair: c.keyPair) }
            try s.setOption(.reconnectInterval, 100)
            try s.setOption(.reconnectIntervalMax, 2000)
        }
        try work.connect(options.learner.work)
        try notices.connect(options.learner.notices)
        try weights.connect(options.learner.weights)
        welcomed = false
        lastHeard = now
        lastHelloSent = Self.never
        creditsOutstanding = 0
        weightSync.connectionReset()
        log.info("connecting to learner (\(options.learner))")
    }

    private func closeSockets() {
        for s in [work, notices, weights] { s?.close() }
    }

    private func reconnect(reason: String) throws {
        summary.reconnects += 1
        log.warning("learner unreachable (\(reason)); reconnecting in \(backoffMs) ms; \(unacked.count) groups kept for resend")
        closeSockets()
        Thread.sleep(forTimeInterval: Double(backoffMs) / 1000)
        backoffMs = min(options.maxBackoffMs, backoffMs * 2)
        try connect()
    }

    private func send(_ socket: ZMQSocket, _ body: Message, incarnation inc: UInt64? = nil) {
        sendRaw(socket, WireCodec.encode(.stamped(sender: options.actorId, body, incarnation: inc ?? incarnation)))
    }

    private func send(_ requests: [SnapshotRequest]) {
        for r in requests { send(weights, .snapshotRequest(r)) }
    }

    private func sendRaw(_ socket: ZMQSocket, _ bytes: [UInt8]) {
        do { _ = try socket.send(frames: [bytes], dontWait: true) } catch {
            log.warning("send failed: \(error)")
        }
    }

    // MARK: Receiving

    private func pump(timeoutMs: Int) throws {
        let poller = ZMQPoller()
        _ = poller.add(work)
        _ = poller.add(notices)
        _ = poller.add(weights)
        let ready = try poller.poll(timeoutMs: timeoutMs)
        for i in ready {
            let socket = poller.socket(i)
            // Drain what is there without blocking, a bounded number per pass: a 2.5 GB snapshot arrives as 600
            // chunks that keep coming while they are asked for, and heartbeats (`periodic`) must go out meanwhile
            // (a real Qwen2.5-0.5B fetch in one pass silenced the actor past the learner's heartbeat timeout).
            var budget = 16
            while budget > 0, let frames = try socket.receiveFrames(timeoutMs: 0) {
                budget -= 1
                // Snapshot chunks come as (header, bytes): the bytes frame is handed to the assembler as is.
                if i == 2 && frames.count == 2 {
                    do {
                        let env = try WireCodec.decode(frames[0], maxBytes: options.maxMessageBytes)
                        guard case .snapshotChunk(let c) = env.body, c.dataInNextFrame else {
                            log.error("dropped a 2-frame weights message that is not a chunk header + data")
                            continue
                        }
                        guard observe(incarnation: env.learnerIncarnation) else { continue }
                        lastHeard = now
                        frames[1].withUnsafeBytes { accept(chunk: c, data: $0) }
                    } catch {
                        log.error("dropped a malformed chunk header from the learner: \(error)")
                    }
                    continue
                }
                guard frames.count == 1 else {
                    log.error("dropped a \(frames.count)-frame message on \(i == 0 ? "work" : i == 1 ? "notices" : "weights"): expected 1 frame")
                    continue
                }
                let env: Envelope
                do { env = try WireCodec.decode(frames[0], maxBytes: options.maxMessageBytes) } catch {
                    log.error("dropped a malformed message from the learner: \(error)")
                    continue
                }
                guard observe(incarnation: env.learnerIncarnation) else { continue }
                lastHeard = now
                try handle(env)
            }
        }
    }

    /// Every learner message carries its incarnation: a new one is a restarted learner (crash + `--resume`, or
    /// a new run on the same endpoint). Everything tied to the old one is dropped before the message is handled.
    /// Returns false for a late message of an incarnation already left behind (to be dropped).
    private func observe(incarnation inc: UInt64) -> Bool {
        let old: UInt64
        switch incarnations.observe(inc) {
        case .current: return true
        case .late: return false
        case .restarted(let from): old = from
        }
        generation += 1
        let dropped = mailbox.dropQueued() + waiting.map(\.taskId)
        summary.learnerRestarts += 1
        summary.groupsDroppedOnRestart += unacked.count
        summary.tasksDroppedOnRestart += dropped.count
        log.warning("learner restarted (incarnation \(String(old, radix: 16)) → \(String(inc, radix: 16))): dropped \(unacked.count) unacknowledged groups and \(dropped.count) queued tasks of the old one; saying hello again and fetching its weights")
        unacked.removeAll()
        waiting.removeAll()
        creditsOutstanding = 0
        finished = false
        learnerGone = false
        welcomed = false
        lastHelloSent = Self.never
        weightSync.learnerRestarted()
        held.value = 0
        return true
    }

    private func handle(_ env: Envelope) throws {
        switch env.body {
        case .welcome(let w):
            // Hellos queued while the learner was not yet bound all get a Welcome: say it once per session.
            let again = welcomed
            welcomed = true
            backoffMs = 250
            firstContact = firstContact ?? now
            heartbeatIntervalMs = UInt64(max(100, w.heartbeatIntervalMs))
            heartbeatTimeoutMs = UInt64(max(w.heartbeatIntervalMs * 2, w.heartbeatTimeoutMs))
            log.log(level: again ? .debug : .info, "welcomed by run \(w.runId) (learner incarnation \(String(env.learnerIncarnation, radix: 16))); learner at weight version \(w.currentWeightVersion)")
            if w.lora != nil && !engine.appliesAdapters {
                throw ActorError(message: "the learner of run \(w.runId) sent LoRA adapters (welcome.lora) although this actor did not say it applies them")
            }
            if configuredJSON != w.modelConfigJson || configuredAdapters != w.lora {
                configuredJSON = w.modelConfigJson
                configuredAdapters = w.lora
                mailbox.configure(w.modelConfigJson, adapters: w.lora)
                held.value = 0
                if let l = w.lora {
                    log.info("LoRA run (rank \(l.rank), alpha \(l.alpha), \(l.targetModules.joined(separator: ","))): fetching the frozen base once, then adapter-only versions")
                }
                // The base in the learner's weight dtype (unspecified): the values a merged full version would carry.
                // Not BF16 for a BF16-holding engine: that would round the F32 norms and biases too (they stay F32
                // in a BF16 model), and the actor would sample with another model than the learner's.
                send(weightSync.configure(mode: w.lora == nil ? .full : .adapters(baseDType: .unspecified), now: now))
            }
            noteVersion(w.currentWeightVersion)
            // Groups finished while disconnected go out again now (same incarnation: a restart dropped them).
            for (id, u) in unacked { sendRaw(work, u.bytes); unacked[id] = (u.bytes, now) }
        case .workItem(let item):
            creditsOutstanding = max(0, creditsOutstanding - 1)
            if item.minWeightVersion > heldVersion || heldVersion == 0 {
                waiting.append(item)
                noteVersion(item.minWeightVersion)
            } else {
                mailbox.enqueue(item, generation: generation)
            }
        case .noWork(let n):
            creditsOutstanding = 0
            if n.finished {
                if !finished { log.info("learner: run finished (\(n.reason))") }
                finished = true
            }
            retryAfter = now + UInt64(max(50, n.retryAfterMs))
        case .ack(let a):
            if unacked.removeValue(forKey: a.taskId) != nil {
                summary.groupsAcked += 1
                if a.status != .accepted {
                    log.info("task \(a.taskId): \(a.status) \(a.detail)")
                }
            }
        case .heartbeat(let hb):
            noteVersion(hb.weightVersion)
        case .weightNotice(let n):
            noteVersion(n.version)
        case .snapshotChunk(let c):
            accept(chunk: c, data: nil)
        case .error(let e):
            log.error("learner refused our message: \(e.code) \(e.message) [\(e.field)]")
            if e.code == .protocolVersion {
                throw ActorError(message: "learner speaks another protocol version: \(e.message)")
            }
            if e.code == .unknownPeer {
                // The learner does not know this actor (declared dead, or restarted): hello again. Credits granted
                // to the old session are gone with it.
                welcomed = false; lastHelloSent = Self.never; creditsOutstanding = 0
            }
            if e.code == .unknownVersion, let v = weightSync.fetchingVersion {
                // The learner moved on: fetch whatever is current.
                log.info("snapshot v\(v) no longer served; fetching the current version")
                send(weightSync.versionNotServed(now: now))
            }
        default:
            log.warning("unexpected \(env.body.fieldName) from the learner; ignored")
        }
    }

    // MARK: Weights (Clone pattern client; the logic is WeightSync)

    private func noteVersion(_ v: UInt64) { send(weightSync.note(version: v, now: now)) }

    private func accept(chunk c: SnapshotChunk, data: UnsafeRawBufferPointer?) {
        switch weightSync.accept(chunk: c, data: data, now: now) {
        case .ignored: break
        case .requests(let r): send(r)
        case .assembled(let snap, let ms, let next):
            mailbox.install(snap)
            summary.weightBytesReceived += Int(c.totalBytes)
            if snap.kind == .frozenBase { summary.frozenBaseBytesReceived += Int(c.totalBytes) } else {
                summary.versionBytesReceived[snap.version] = Int(c.totalBytes)
            }
            let secs = max(1e-3, Double(ms) / 1000)
            let what = snap.kind == .frozenBase ? "frozen base" : "\(snap.kind == .adapter ? "adapters" : "weights") v\(snap.version)"
            log.log(level: snap.kind == .frozenBase ? .info : .debug, "\(what) received: \(c.totalBytes) bytes in \(String(format: "%.3f", secs)) s (\(String(format: "%.0f", Double(c.totalBytes) / secs / 1e6)) MB/s); installing")
            send(next)
        case .refused(let why, let r):
            log.error("\(why); restarting the fetch")
            send(r)
        }
    }

    // MARK: Worker results and timers

    private func handleWorkerOutputs() throws {
        for out in mailbox.drainOutputs() {
            switch out {
            case .group(let g, let gen):
                guard gen == generation else {
                    log.info("task \(g.taskId) of the learner's earlier incarnation finished: dropped")
                    continue
                }
                // The engine's reward is the mean self-certainty; a NaN would be refused by the learner's decoder.
                for i in g.completions.indices where !g.completions[i].reward.isFinite {
                    log.error("task \(g.taskId): completion \(i) has a non-finite reward; the learner will reject it")
                }
                let bytes = WireCodec.encode(.stamped(sender: options.actorId, .rolloutGroup(g), incarnation: incarnation))
                unacked[g.taskId] = (bytes, now)
                let ms = Double(g.timings.decodeMs + g.timings.prefillMs)
                if ms > 0 { summary.tokensPerSecond = Double(g.timings.generatedTokens) / (ms / 1000) }
                summary.groupsSent += 1
                sendRaw(work, bytes)
            case .failed(let task, let error, let gen):
                guard gen == generation else { continue }
                summary.tasksFailed += 1
                log.error("task \(task) failed here: \(error); reported to the learner (re-issued elsewhere, quarantined once it failed on two actors)")
                send(work, .taskFailure(TaskFailure(taskId: task, error: error)))
            case .installed(let v, .frozenBase):
                send(weightSync.installed(version: v, kind: .frozenBase, now: now))
                log.log(level: weightSync.baseHeld ? .info : .debug, weightSync.baseHeld ? "frozen base installed" : "frozen base of the learner's earlier incarnation installed; not used")
            case .installed(let v, let kind):
                send(weightSync.installed(version: v, kind: kind, now: now))
                held.value = weightSync.held
                guard weightSync.held == v else {
                    log.info("weights v\(v) of the learner's earlier incarnation installed; not used")
                    continue
                }
                summary.weightVersionsInstalled.append(v)
                summary.installedAt[v] = Date()
                log.debug("weights v\(v) installed")
                let ready = waiting.filter { $0.minWeightVersion <= v }
                waiting.removeAll { $0.minWeightVersion <= v }
                for item in ready { mailbox.enqueue(item, generation: generation) }
            case .installFailed(let v, let kind, let e):
                throw ActorError(message: "cannot install \(kind == .frozenBase ? "the frozen base" : "\(kind == .adapter ? "adapters" : "weights") v\(v)"): \(e)")
            case .configured:
                log.info("model configured from the learner's config")
            case .configureFailed(let e):
                throw ActorError(message: "cannot build the learner's model: \(e)")
            }
        }
    }

    /// Milliseconds since `t` (`never` counts as long ago).
    private func since(_ t: UInt64) -> UInt64 { t == Self.never ? .max : now &- t }

    private func periodic() throws {
        let now = self.now
        if !welcomed {
            if since(lastHelloSent) > UInt64(backoffMs) {
                let host = ProcessInfo.processInfo.hostName
                send(work, .hello(Hello(actorId: options.actorId, hostname: host,
                                        pid: UInt32(ProcessInfo.processInfo.processIdentifier),
                                        maxBatchSequences: UInt32(options.batchSequences), weightVersion: heldVersion,
                                        appliesAdapters: engine.appliesAdapters)))
                lastHelloSent = now
                backoffMs = min(options.maxBackoffMs, backoffMs * 2)
            }
            if options.giveUpAfterMs > 0, now - (firstContact ?? 0) > UInt64(options.giveUpAfterMs) {
                // A CURVE learner drops a handshake it does not accept without a word: say what to check.
                let hint = options.curve == nil
                    ? " (if the learner uses CURVE, pass --curve-secret and --learner-key)"
                    : " (check that this actor's public key \(options.curve!.keyPair.publicKey.short) is in the learner's --authorized-keys and --learner-key is the learner's key)"
                throw ActorError(message: "no answer from the learner at \(options.learner.work) for \(options.giveUpAfterMs) ms\(hint)")
            }
            return
        }
        if since(lastHeard) > heartbeatTimeoutMs {
            // A process that was suspended (SIGSTOP, a paused VM) first reads what arrived while it slept (the
            // learner's finish notice may be there), giving libzmq's I/O thread a moment to deliver it.
            try pump(timeoutMs: 200)
            guard since(lastHeard) > heartbeatTimeoutMs else { return }
            if finished { learnerGone = true; return }
            try reconnect(reason: "silent for \(since(lastHeard)) ms")
            return
        }
        if since(lastHeartbeatSent) >= heartbeatIntervalMs {
            // Everything this actor still answers for: queued / sampling / drained-not-sent, waiting for weights,
            // and sent but not acknowledged (the learner re-issues in-flight tasks missing from this list).
            send(work, .heartbeat(Heartbeat(weightVersion: heldVersion,
                                            tasksInProgress: mailbox.tasksInProgress + waiting.map(\.taskId) + unacked.keys.sorted(),
                                            creditsOutstanding: UInt32(creditsOutstanding))))
            lastHeartbeatSent = now
        }
        for (id, u) in unacked where since(u.sent) > UInt64(options.ackTimeoutMs) {
            sendRaw(work, u.bytes)
            unacked[id] = (u.bytes, now)
            summary.resends += 1
        }
        // Chunks lost (connection broken, or past a high-water mark): ask again from the first missing one.
        send(weightSync.tick(now: now))
        // Ask for work when everything local is done (one task at a time keeps staleness minimal).
        if !finished, heldVersion > 0, creditsOutstanding == 0, waiting.isEmpty, mailbox.isIdle, now >= retryAfter {
            send(work, .workRequest(WorkRequest(credits: 1)))
            // No retry timer: the learner keeps granted credits until it has work; every heartbeat says how many
            // are outstanding, so a request (or work item) lost with a broken connection is made good by the
            // learner (`TaskLedger.reconcileCredits`), and this actor's own reconnect resets the count.
            creditsOutstanding = 1
        }
    }
}

/// Lock-protected version number shared by the network and worker threads.
final class VersionCell: @unchecked Sendable {  // every access holds `lock`
    private let lock = NSLock()
    private var v: UInt64 = 0
    var value: UInt64 {
        get { lock.lock(); defer { lock.unlock() }; return v }
        set { lock.lock(); v = newValue; lock.unlock() }
    }
}

/// Moves the engine to the worker thread, which is its only user after `run()` starts.
struct EngineBox: @unchecked Sendable {
    let engine: RolloutEngine
}
