import Foundation
import Logging
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
    /// Snapshot bytes received, and generated tokens per second of the last group sent (for /metrics).
    public var weightBytesReceived = 0
    public var tokensPerSecond = 0.0
    public var reconnects = 0
    public var finalVersion: UInt64 = 0
}

/// An actor's network side (zguide Paranoid Pirate worker + Clone client), on the calling thread, with the
/// sampling on a worker thread so heartbeats keep flowing while a group is being decoded.
///
/// Sockets: DEALER → learner work ROUTER (hello, heartbeats, work requests, groups; welcome, items, acks),
/// SUB ← learner PUB (weight notices), DEALER → learner weights ROUTER (snapshot requests; chunks).
/// Finished groups are kept until acknowledged and resent after `ackTimeoutMs` and after a reconnect, so a
/// learner restart or a lost message never loses a group (the learner dedupes by task id).
public final class ActorClient {
    public let options: ActorOptions
    let engine: RolloutEngine
    let log: Logger
    let mailbox = ActorMailbox()

    private let context: ZMQContext
    private var work: ZMQSocket!
    private var notices: ZMQSocket!
    private var weights: ZMQSocket!

    // Connection state.
    private var welcomed = false
    private var configuredJSON: String?
    private var lastHeard = Date()
    private var lastHelloSent = Date.distantPast
    private var heartbeatInterval = 1.0
    private var heartbeatTimeout = 10.0
    private var lastHeartbeatSent = Date.distantPast
    private var backoffMs = 250
    private var firstContact: Date?
    private let started = Date()

    // Weights.
    /// Version of the weights the worker has installed (read by the worker when it stamps a group).
    private let held = VersionCell()
    var heldVersion: UInt64 {
        get { held.value }
        set { held.value = newValue }
    }
    private var installing: UInt64?
    private var newestKnown: UInt64 = 0
    private struct Fetch {
        var version: UInt64
        var assembler: SnapshotAssembler
        var nextChunk: UInt32 = 0
        var inFlight = 0
        var lastActivity = Date()
        let started = Date()
    }
    private var fetch: Fetch?

    // Work.
    private var creditsOutstanding = 0
    private var waiting: [WorkItem] = []          // received, need newer weights first
    private var unacked: [UInt64: (bytes: [UInt8], sent: Date)] = [:]
    private var retryAfter = Date.distantPast
    private var finished = false
    public private(set) var summary = ActorSummary() { didSet { onSummary?(summary) } }
    /// Called on the actor's thread whenever `summary` changes (e.g. to update Prometheus gauges).
    public var onSummary: ((ActorSummary) -> Void)?

    public init(options: ActorOptions, engine: RolloutEngine, logger: Logger) throws {
        self.options = options
        self.engine = engine
        log = logger
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
            if finished && unacked.isEmpty && mailbox.isIdle && waiting.isEmpty && fetch == nil && installing == nil
                && heldVersion >= newestKnown {
                send(work, .goodbye(Goodbye(reason: "run finished")))
                log.info("run finished; \(summary.groupsAcked) groups acknowledged, weights v\(heldVersion)")
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
            try s.setOption(.reconnectInterval, 100)
            try s.setOption(.reconnectIntervalMax, 2000)
        }
        try work.connect(options.learner.work)
        try notices.connect(options.learner.notices)
        try weights.connect(options.learner.weights)
        welcomed = false
        lastHeard = Date()
        lastHelloSent = .distantPast
        creditsOutstanding = 0
        fetch = nil
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

    private func send(_ socket: ZMQSocket, _ body: Message) {
        sendRaw(socket, WireCodec.encode(.stamped(sender: options.actorId, body)))
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
            // Drain what is there without blocking.
            while let frames = try socket.receiveFrames(timeoutMs: 0) {
                // Snapshot chunks come as (header, bytes): the bytes frame is handed to the assembler as is.
                if i == 2 && frames.count == 2 {
                    do {
                        let env = try WireCodec.decode(frames[0], maxBytes: options.maxMessageBytes)
                        guard case .snapshotChunk(let c) = env.body, c.dataInNextFrame else {
                            log.error("dropped a 2-frame weights message that is not a chunk header + data")
                            continue
                        }
                        lastHeard = Date()
                        try frames[1].withUnsafeBytes { try accept(chunk: c, data: $0) }
                    } catch let e as WireError {
                        log.error("dropped a malformed chunk header from the learner: \(e)")
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
                lastHeard = Date()
                try handle(env)
            }
        }
    }

    private func handle(_ env: Envelope) throws {
        switch env.body {
        case .welcome(let w):
            // Hellos queued while the learner was not yet bound all get a Welcome: say it once per session.
            let again = welcomed
            welcomed = true
            backoffMs = 250
            firstContact = firstContact ?? Date()
            heartbeatInterval = Double(max(100, w.heartbeatIntervalMs)) / 1000
            heartbeatTimeout = Double(max(w.heartbeatIntervalMs * 2, w.heartbeatTimeoutMs)) / 1000
            log.log(level: again ? .debug : .info, "welcomed by run \(w.runId); learner at weight version \(w.currentWeightVersion)")
            if configuredJSON != w.modelConfigJson {
                configuredJSON = w.modelConfigJson
                mailbox.configure(w.modelConfigJson)
                heldVersion = 0
            }
            noteVersion(w.currentWeightVersion)
            // Groups finished while disconnected go out again now.
            for (id, u) in unacked { sendRaw(work, u.bytes); unacked[id] = (u.bytes, Date()) }
        case .workItem(let item):
            creditsOutstanding = max(0, creditsOutstanding - 1)
            if item.minWeightVersion > heldVersion {
                waiting.append(item)
                noteVersion(item.minWeightVersion)
            } else {
                mailbox.enqueue(item)
            }
        case .noWork(let n):
            creditsOutstanding = 0
            if n.finished {
                if !finished { log.info("learner: run finished (\(n.reason))") }
                finished = true
            }
            retryAfter = Date().addingTimeInterval(Double(max(50, n.retryAfterMs)) / 1000)
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
            try accept(chunk: c, data: nil)
        case .error(let e):
            log.error("learner refused our message: \(e.code) \(e.message) [\(e.field)]")
            if e.code == .protocolVersion {
                throw ActorError(message: "learner speaks another protocol version: \(e.message)")
            }
            if e.code == .unknownPeer { welcomed = false; lastHelloSent = .distantPast }
            if e.code == .unknownVersion, let f = fetch {
                // The learner moved on: fetch whatever is current.
                log.info("snapshot v\(f.version) no longer served; fetching the current version")
                fetch = nil
                startFetch(version: 0)
            }
        default:
            log.warning("unexpected \(env.body.fieldName) from the learner; ignored")
        }
    }

    // MARK: Weights (Clone pattern client)

    private func noteVersion(_ v: UInt64) {
        newestKnown = max(newestKnown, v)
        // A notice can arrive (SUB) before the welcome with the model config: fetch only once configured.
        guard configuredJSON != nil, newestKnown > heldVersion, installing.map({ $0 < newestKnown }) ?? true else { return }
        if let f = fetch, f.version >= newestKnown { return }
        startFetch(version: newestKnown)
    }

    private func startFetch(version: UInt64) {
        fetch = Fetch(version: version, assembler: SnapshotAssembler(version: version == 0 ? nil : version))
        requestChunks()
    }

    private func requestChunks() {
        guard let f = fetch else { return }
        let want = options.chunkCredits - f.inFlight
        guard want > 0 else { return }
        // Before the first chunk the count is unknown: ask for `credits` from 0; afterwards only missing ones.
        let total = f.assembler.nChunks.map(UInt32.init) ?? UInt32.max
        guard f.nextChunk < total else { return }
        let n = UInt32(min(want, Int(min(total - f.nextChunk, UInt32(want)))))
        send(weights, .snapshotRequest(SnapshotRequest(version: f.version, firstChunk: f.nextChunk, credits: n)))
        fetch!.nextChunk += n
        fetch!.inFlight += Int(n)
        fetch!.lastActivity = Date()
    }

    private func accept(chunk c: SnapshotChunk, data: UnsafeRawBufferPointer?) throws {
        guard let f0 = fetch else { return }  // a late chunk of an abandoned fetch
        guard c.version == f0.version || f0.version == 0 else { return }
        // Mutate the assembler in place through `fetch!`: a local copy of the struct would share the assembler's
        // (whole-snapshot) buffer and every chunk would then copy all of it (copy-on-write).
        if f0.version == 0 { fetch!.version = c.version }
        fetch!.inFlight = max(0, f0.inFlight - 1)
        fetch!.lastActivity = Date()
        do {
            if try fetch!.assembler.accept(c, data: data) {
                let snap = try fetch!.assembler.finish()
                let started = fetch!.started
                fetch = nil
                installing = snap.version
                mailbox.install(snap)
                let secs = Date().timeIntervalSince(started)
                summary.weightBytesReceived += Int(c.totalBytes)
                log.debug("weights v\(snap.version) received: \(c.totalBytes) bytes in \(String(format: "%.3f", secs)) s (\(String(format: "%.0f", Double(c.totalBytes) / secs / 1e6)) MB/s); installing")
                return
            }
        } catch {
            let v = fetch?.version ?? c.version
            log.error("weights v\(v): \(error); restarting the fetch")
            fetch = nil
            startFetch(version: v)
            return
        }
        requestChunks()
    }

    // MARK: Worker results and timers

    private func handleWorkerOutputs() throws {
        for out in mailbox.drainOutputs() {
            switch out {
            case .group(let g):
                // The engine's reward is the mean self-certainty; a NaN would be refused by the learner's decoder.
                for i in g.completions.indices where !g.completions[i].reward.isFinite {
                    log.error("task \(g.taskId): completion \(i) has a non-finite reward; the learner will reject it")
                }
                let bytes = WireCodec.encode(.stamped(sender: options.actorId, .rolloutGroup(g)))
                unacked[g.taskId] = (bytes, Date())
                let ms = Double(g.timings.decodeMs + g.timings.prefillMs)
                if ms > 0 { summary.tokensPerSecond = Double(g.timings.generatedTokens) / (ms / 1000) }
                summary.groupsSent += 1
                sendRaw(work, bytes)
            case .failed(let task, let error):
                log.error("task \(task) failed locally: \(error); it is no longer in this actor's heartbeats, so the learner re-issues it")
            case .installed(let v):
                heldVersion = v
                installing = nil
                summary.weightVersionsInstalled.append(v)
                summary.installedAt[v] = Date()
                log.debug("weights v\(v) installed")
                let ready = waiting.filter { $0.minWeightVersion <= v }
                waiting.removeAll { $0.minWeightVersion <= v }
                for item in ready { mailbox.enqueue(item) }
                noteVersion(newestKnown)
            case .installFailed(let v, let e):
                installing = nil
                throw ActorError(message: "cannot install weights v\(v): \(e)")
            case .configured:
                log.info("model configured from the learner's config")
            case .configureFailed(let e):
                throw ActorError(message: "cannot build the learner's model: \(e)")
            }
        }
    }

    private func periodic() throws {
        let now = Date()
        if !welcomed {
            if now.timeIntervalSince(lastHelloSent) > Double(backoffMs) / 1000 {
                let host = ProcessInfo.processInfo.hostName
                send(work, .hello(Hello(actorId: options.actorId, hostname: host,
                                        pid: UInt32(ProcessInfo.processInfo.processIdentifier),
                                        maxBatchSequences: UInt32(options.batchSequences), weightVersion: heldVersion)))
                lastHelloSent = now
                backoffMs = min(options.maxBackoffMs, backoffMs * 2)
            }
            if options.giveUpAfterMs > 0, now.timeIntervalSince(firstContact ?? started) * 1000 > Double(options.giveUpAfterMs) {
                throw ActorError(message: "no answer from the learner at \(options.learner.work) for \(options.giveUpAfterMs) ms")
            }
            return
        }
        if now.timeIntervalSince(lastHeard) > heartbeatTimeout {
            try reconnect(reason: "silent for \(Int(now.timeIntervalSince(lastHeard) * 1000)) ms")
            return
        }
        if now.timeIntervalSince(lastHeartbeatSent) >= heartbeatInterval {
            // Everything this actor still answers for: queued / sampling / drained-not-sent, waiting for weights,
            // and sent but not acknowledged (the learner re-issues in-flight tasks missing from this list).
            send(work, .heartbeat(Heartbeat(weightVersion: heldVersion,
                                            tasksInProgress: mailbox.tasksInProgress + waiting.map(\.taskId) + unacked.keys.sorted())))
            lastHeartbeatSent = now
        }
        for (id, u) in unacked where now.timeIntervalSince(u.sent) * 1000 > Double(options.ackTimeoutMs) {
            sendRaw(work, u.bytes)
            unacked[id] = (u.bytes, now)
            summary.resends += 1
        }
        if let f = fetch, now.timeIntervalSince(f.lastActivity) > 5 {
            // Chunks lost (learner restarted or HWM): ask again from the first missing one.
            let first = f.assembler.missingChunks.first ?? 0
            fetch!.inFlight = 0
            fetch!.nextChunk = first
            requestChunks()
        }
        // Ask for work when everything local is done (one task at a time keeps staleness minimal).
        if !finished, heldVersion > 0, creditsOutstanding == 0, waiting.isEmpty, mailbox.isIdle, now >= retryAfter {
            send(work, .workRequest(WorkRequest(credits: 1)))
            // No retry timer: the learner keeps granted credits until it has work, and a request lost with a
            // broken connection is re-sent after the reconnect (which resets `creditsOutstanding`).
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
