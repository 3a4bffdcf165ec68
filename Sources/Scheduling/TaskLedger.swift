import Wire

/// The learner's bookkeeping of tasks and actors (Paranoid Pirate + credits), as pure logic: no sockets, no
/// clocks (every call takes `now` in monotonic milliseconds), so every race can be replayed in a test.
///
/// Guarantees (see docs/PROTOCOL.md):
/// - a task is trained on at most once: the first acceptable group for a task id wins, any later group for it
///   (a resend, a re-issued copy, a dead actor's late answer) is `.duplicate`;
/// - a task is never lost: it is pending, in flight at exactly one live actor, or done. When its actor dies
///   (silent past `heartbeatTimeoutMs`), says goodbye, says hello again (restarted), stops listing the task in
///   its heartbeats (`reconcile`), or the task outlives `taskTimeoutMs`, it goes back to the FRONT of the
///   pending queue, once;
/// - a task that fails (`TaskFailure`) on `quarantineActors` different actors, or `quarantineFailures` times in
///   all, is quarantined: never issued again, never trained, counted (a bad prompt cannot be re-issued forever);
/// - an actor never holds more tasks than the credits it granted (`WorkRequest.credits`, additive).
public struct TaskLedger: Sendable {
    public struct Config: Sendable, Equatable {
        /// Completions per group unless a task says otherwise.
        public var groupSize: UInt32
        /// An actor silent (no message of any kind) for longer is declared dead.
        public var heartbeatTimeoutMs: UInt64
        /// A task in flight for longer is re-issued even though its actor is alive (0 = never).
        public var taskTimeoutMs: UInt64
        /// Accept groups sampled with weights at most this many versions old.
        public var maxLag: UInt64
        /// A task that failed on this many different actors is quarantined.
        public var quarantineActors: Int
        /// ... or that failed this many times in all (a run with one actor must not retry a bad prompt forever).
        public var quarantineFailures: Int

        public init(groupSize: UInt32, heartbeatTimeoutMs: UInt64 = 5000, taskTimeoutMs: UInt64 = 0, maxLag: UInt64 = 1,
                    quarantineActors: Int = 2, quarantineFailures: Int = 3) {
            self.groupSize = groupSize; self.heartbeatTimeoutMs = heartbeatTimeoutMs
            self.taskTimeoutMs = taskTimeoutMs; self.maxLag = maxLag
            self.quarantineActors = max(1, quarantineActors); self.quarantineFailures = max(1, quarantineFailures)
        }
    }

    /// Running totals, for metrics.
    public struct Counts: Sendable, Equatable {
        public var submitted = 0
        /// Work items handed out (first issues and re-issues).
        public var issued = 0
        /// Tasks put back in the queue (dead actor, goodbye, restart, timeout, stale or rejected answer).
        public var reissued = 0
        public var accepted = 0
        public var duplicate = 0
        public var stale = 0
        public var rejected = 0
        /// Of `rejected`: groups refused by the caller's content check (`accept(_:check:)`).
        public var invalid = 0
        public var deadActors = 0
        /// TaskFailure reports counted against a task.
        public var failures = 0
        /// Tasks given up on (failed on too many actors).
        public var quarantined = 0
        public init() {}
    }

    /// A work item to send to an actor.
    public struct Assignment: Sendable, Equatable {
        public var actorId: String
        public var item: WorkItem
    }

    /// What `expire(now:)` did.
    public struct Expiry: Sendable, Equatable {
        /// Actors declared dead (and forgotten), in the order they were first seen.
        public var deadActors: [String] = []
        /// Tasks put back in the queue.
        public var reissued: [UInt64] = []
    }

    private enum State: Sendable, Equatable {
        case pending
        case inFlight(actor: String, since: UInt64)
        case done
        case quarantined
    }

    private struct Task: Sendable {
        var item: WorkItem  // prompt tokens dropped once done
        var state: State
        var attempts: Int
        /// Actors that reported a failure of this task, and how many reports counted.
        var failedOn: Set<String> = []
        var failures = 0
    }

    /// What `fail(taskId:actorId:now:)` did with a failure report.
    public enum FailureOutcome: Sendable, Equatable {
        /// Back at the front of the queue, for another attempt.
        case reissued
        /// Given up: the actors it failed on, sorted. Never issued again; a late group for it is rejected.
        case quarantined(failedOn: [String])
        /// Counted, but the task stays where it is (in flight at another actor, or already queued).
        case counted
        /// Not counted: unknown task, already done or quarantined.
        case ignored
    }

    private struct Actor: Sendable {
        var credits: UInt32
        var lastSeen: UInt64
        var tasks: Set<UInt64>
    }

    public let config: Config
    public private(set) var counts = Counts()
    private var tasks: [UInt64: Task] = [:]
    /// Pending task ids, front first. May hold ids that completed while pending: skipped when popped.
    private var queue: [UInt64] = []
    private var queueHead = 0
    private var front: [UInt64] = []  // re-issued tasks, served before `queue` (LIFO is fine: all are late)
    private var actors: [String: Actor] = [:]
    private var actorOrder: [String] = []  // round-robin order of dispatch
    private var nextTaskId: UInt64 = 1
    private var pendingTotal = 0
    /// Ids are handed out in sequence from `firstTaskId`; every task below `doneBelow` is done and forgotten, so
    /// the set of completed tasks kept for dedupe is only those above this watermark (the open steps), not the
    /// whole run. A group for a forgotten task is still a duplicate.
    private let firstTaskId: UInt64
    private var doneBelow: UInt64
    /// Quarantined tasks below the watermark (id → the actors it failed on): a quarantined task must not hold the
    /// watermark (everything after it would be kept for the rest of the run), yet a late group for it is refused
    /// as quarantined, not taken for a duplicate. Few: one per prompt given up on.
    private var quarantinedBelow: [UInt64: [String]] = [:]

    public init(config: Config, firstTaskId: UInt64 = 1) {
        self.config = config
        self.nextTaskId = firstTaskId
        self.firstTaskId = firstTaskId
        self.doneBelow = firstTaskId
    }

    /// Tasks the ledger holds (pending, in flight, or done above the watermark): bounded by the open work.
    public var retainedTaskCount: Int { tasks.count }

    /// The work item of a task that is not done yet (what a group answering it must match), else nil.
    public func item(_ taskId: UInt64) -> WorkItem? {
        guard let t = tasks[taskId], t.state != .done else { return nil }
        return t.item
    }

    private mutating func advanceWatermark() {
        while doneBelow < nextTaskId, let t = tasks[doneBelow], t.state == .done || t.state == .quarantined {
            if t.state == .quarantined { quarantinedBelow[doneBelow] = t.failedOn.sorted() }
            tasks[doneBelow] = nil
            doneBelow += 1
        }
    }

    // MARK: Tasks

    /// Queues a prompt; returns its task id. `item.taskId` is overwritten; `groupSize` 0 means `config.groupSize`.
    @discardableResult
    public mutating func submit(_ item: WorkItem) -> UInt64 {
        var item = item
        item.taskId = nextTaskId
        if item.groupSize == 0 { item.groupSize = config.groupSize }
        nextTaskId += 1
        tasks[item.taskId] = Task(item: item, state: .pending, attempts: 0)
        queue.append(item.taskId)
        pendingTotal += 1
        counts.submitted += 1
        return item.taskId
    }

    public var pendingCount: Int { pendingTotal }
    public var inFlightCount: Int { actors.values.reduce(0) { $0 + $1.tasks.count } }
    /// Tasks `actorId` holds now (0 when unknown).
    public func tasksHeld(by actorId: String) -> Int { actors[actorId]?.tasks.count ?? 0 }
    public var doneCount: Int { counts.accepted }
    /// True when every submitted task has been accepted or quarantined.
    public var isDrained: Bool { counts.accepted + counts.quarantined == counts.submitted }
    public func isQuarantined(_ taskId: UInt64) -> Bool { quarantinedBelow[taskId] != nil || tasks[taskId]?.state == .quarantined }

    /// Times the task was handed out (nil for an unknown id).
    public func attempts(_ taskId: UInt64) -> Int? { tasks[taskId]?.attempts }
    public func isDone(_ taskId: UInt64) -> Bool { isForgottenDone(taskId) || tasks[taskId]?.state == .done }
    private func isForgottenDone(_ id: UInt64) -> Bool { id >= firstTaskId && id < doneBelow && quarantinedBelow[id] == nil }
    /// The actor holding the task, if it is in flight.
    public func holder(_ taskId: UInt64) -> String? {
        if case .inFlight(let a, _)? = tasks[taskId]?.state { return a }
        return nil
    }

    private mutating func requeue(_ id: UInt64) {
        guard var t = tasks[id], case .inFlight(let a, _) = t.state else { return }
        actors[a]?.tasks.remove(id)
        t.state = .pending
        tasks[id] = t
        front.append(id)
        pendingTotal += 1
        counts.reissued += 1
    }

    private mutating func popPending() -> UInt64? {
        while let id = front.popLast() {
            if tasks[id]?.state == .pending { return id }
        }
        while queueHead < queue.count {
            let id = queue[queueHead]
            queueHead += 1
            if queueHead > 4096 && queueHead * 2 > queue.count {  // compact the consumed prefix now and then
                queue.removeFirst(queueHead); queueHead = 0
            }
            if tasks[id]?.state == .pending { return id }
        }
        return nil
    }

    // MARK: Failures

    /// The actor reports that sampling the task failed there (`TaskFailure`). From the holder, the task goes back to
    /// the front of the queue — unless this failure makes it fail on `quarantineActors` different actors or
    /// `quarantineFailures` times, which quarantines it. A late report from an earlier holder (the task was
    /// re-issued meanwhile) counts too, and may quarantine a task that is queued or held elsewhere.
    public mutating func fail(taskId id: UInt64, actorId: String, now: UInt64) -> FailureOutcome {
        heartbeat(actorId: actorId, now: now)
        guard var t = tasks[id] else { return .ignored }
        switch t.state {
        case .done, .quarantined: return .ignored
        case .pending, .inFlight: break
        }
        t.failedOn.insert(actorId)
        t.failures += 1
        tasks[id] = t
        counts.failures += 1
        if t.failedOn.count >= config.quarantineActors || t.failures >= config.quarantineFailures {
            switch t.state {
            case .inFlight(let holder, _): actors[holder]?.tasks.remove(id)
            case .pending: pendingTotal -= 1  // its queue entry is skipped when popped
            case .done, .quarantined: break
            }
            t.state = .quarantined
            t.item.promptTokens = []
            tasks[id] = t
            counts.quarantined += 1
            advanceWatermark()
            return .quarantined(failedOn: t.failedOn.sorted())
        }
        if case .inFlight(let holder, _) = t.state, holder == actorId {
            requeue(id)
            return .reissued
        }
        return .counted
    }

    // MARK: Actors

    /// An actor said Hello. A known actor saying hello again has restarted: its in-flight tasks are re-queued
    /// (returned) and its credits reset.
    @discardableResult
    public mutating func hello(actorId: String, now: UInt64) -> [UInt64] {
        var reissued: [UInt64] = []
        if let old = actors[actorId] {
            reissued = old.tasks.sorted()
            for id in reissued { requeue(id) }
        } else {
            actorOrder.append(actorId)
        }
        actors[actorId] = Actor(credits: 0, lastSeen: now, tasks: [])
        return reissued
    }

    /// Any message from a known actor proves it alive. Returns false for an unknown (or declared dead) actor,
    /// which must say Hello again.
    @discardableResult
    public mutating func heartbeat(actorId: String, now: UInt64) -> Bool {
        guard actors[actorId] != nil else { return false }
        actors[actorId]!.lastSeen = max(actors[actorId]!.lastSeen, now)
        return true
    }

    /// A Heartbeat listed the tasks the actor holds (queued, sampling, waiting for weights, or answered and not yet
    /// acknowledged). A task in flight at that actor that the list lacks and that was issued more than `graceMs`
    /// before `now` is gone on the actor's side (it failed there, or its work item was lost), so it is re-queued
    /// now instead of at the task timeout; returns those ids. Younger tasks may still be on their way to the
    /// actor and are left alone (the grace should be at least the heartbeat timeout).
    @discardableResult
    public mutating func reconcile(actorId: String, holding: [UInt64], now: UInt64, graceMs: UInt64) -> [UInt64] {
        guard let a = actors[actorId] else { return [] }
        let lost = unheld(a, holding: holding, now: now, graceMs: graceMs).lost
        for t in lost { requeue(t) }
        return lost
    }

    /// The in-flight tasks of `a` that `holding` lacks, split by age: issued within `graceMs` of `now` they may
    /// still be on their way to the actor (`inTransit`, a count); older ones are gone there (`lost`, sorted).
    private func unheld(_ a: Actor, holding: [UInt64], now: UInt64, graceMs: UInt64) -> (inTransit: UInt32, lost: [UInt64]) {
        let held = Set(holding)
        var inTransit: UInt32 = 0
        var lost: [UInt64] = []
        for t in a.tasks where !held.contains(t) {
            guard case .inFlight(_, let since)? = tasks[t]?.state else { continue }
            if now > since, now - since > graceMs { lost.append(t) } else { inTransit += 1 }
        }
        return (inTransit, lost.sorted())
    }

    /// A Heartbeat also said how many credits the actor believes this learner holds for it (`outstanding`: asked
    /// for, not yet answered by a WorkItem). Messages on one connection arrive in order, so when nothing is lost
    /// `credits + inTransit == outstanding`, where `inTransit` counts tasks issued to the actor within `graceMs`
    /// that `holding` lacks (on their way). A connection broken mid-run (libzmq reconnects under the actor's feet)
    /// may lose a WorkRequest (learner short of credits: both sides wait forever) or a WorkItem (its task is
    /// re-queued by `reconcile` after the grace, but the credit it used is gone); an actor that reconnected by
    /// itself asks again while the learner may still hold the old credit (one too many). So the learner's count
    /// is set to `outstanding - inTransit` whenever they differ. Call after `reconcile` (which re-queues the lost
    /// tasks first). Returns (before, after) when it changed the count, else nil.
    @discardableResult
    public mutating func reconcileCredits(actorId: String, outstanding: UInt32, holding: [UInt64], now: UInt64,
                                          graceMs: UInt64) -> (before: UInt32, after: UInt32)? {
        guard let a = actors[actorId] else { return nil }
        let inTransit = unheld(a, holding: holding, now: now, graceMs: graceMs).inTransit
        let want = outstanding > inTransit ? outstanding - inTransit : 0
        guard want != a.credits else { return nil }
        actors[actorId]!.credits = want
        return (a.credits, want)
    }

    /// A WorkRequest: the actor can take `credits` more tasks (added to what it has left).
    @discardableResult
    public mutating func addCredits(actorId: String, credits: UInt32, now: UInt64) -> Bool {
        guard heartbeat(actorId: actorId, now: now) else { return false }
        let (sum, o) = actors[actorId]!.credits.addingReportingOverflow(credits)
        actors[actorId]!.credits = o ? .max : sum
        return true
    }

    /// The actor left cleanly: its in-flight tasks are re-queued at once (returned).
    @discardableResult
    public mutating func goodbye(actorId: String) -> [UInt64] {
        guard let a = actors[actorId] else { return [] }
        let ids = a.tasks.sorted()
        for id in ids { requeue(id) }
        forget(actorId)
        return ids
    }

    private mutating func forget(_ actorId: String) {
        actors[actorId] = nil
        actorOrder.removeAll { $0 == actorId }
    }

    public var actorIds: [String] { actorOrder }
    public func credits(actorId: String) -> UInt32? { actors[actorId]?.credits }
    public func tasksInFlight(actorId: String) -> [UInt64] { actors[actorId]?.tasks.sorted() ?? [] }

    // MARK: Time

    /// Declares silent actors dead (re-queueing their tasks) and re-queues tasks past `taskTimeoutMs`.
    /// Idempotent: a second call at the same `now` does nothing.
    public mutating func expire(now: UInt64) -> Expiry {
        var out = Expiry()
        for id in actorOrder {
            guard let a = actors[id], now > a.lastSeen, now - a.lastSeen > config.heartbeatTimeoutMs else { continue }
            out.deadActors.append(id)
            let ids = a.tasks.sorted()
            for t in ids { requeue(t) }
            out.reissued += ids
            counts.deadActors += 1
        }
        for id in out.deadActors { forget(id) }
        if config.taskTimeoutMs > 0 {
            var late: [UInt64] = []
            for a in actors.values {
                for t in a.tasks {
                    if case .inFlight(_, let since)? = tasks[t]?.state, now > since, now - since > config.taskTimeoutMs {
                        late.append(t)
                    }
                }
            }
            late.sort()
            for t in late { requeue(t) }
            out.reissued += late
        }
        return out
    }

    // MARK: Dispatch

    /// Hands pending tasks to actors with credits, round-robin one task per actor per pass. Each item's
    /// `minWeightVersion` is `weightVersion - maxLag` (so an actor that is too far behind fetches weights first).
    public mutating func dispatch(now: UInt64, weightVersion: UInt64) -> [Assignment] {
        var out: [Assignment] = []
        let minVersion = weightVersion >= config.maxLag ? weightVersion - config.maxLag : 0
        var progress = true
        while progress && pendingTotal > 0 {
            progress = false
            for actorId in actorOrder where pendingTotal > 0 {
                guard let a = actors[actorId], a.credits > 0, let id = popPending() else { continue }
                var t = tasks[id]!
                t.state = .inFlight(actor: actorId, since: now)
                t.attempts += 1
                t.item.minWeightVersion = minVersion
                tasks[id] = t
                actors[actorId]!.credits -= 1
                actors[actorId]!.tasks.insert(id)
                pendingTotal -= 1
                counts.issued += 1
                out.append(Assignment(actorId: actorId, item: t.item))
                progress = true
            }
        }
        return out
    }

    // MARK: Results

    /// Judges a RolloutGroup and returns the Ack to send back. Only `.accepted` groups may be trained on.
    ///
    /// Order of checks: unknown task -> rejected; already done -> duplicate; wrong group size or a group from a
    /// future weight version -> rejected; older than `maxLag` -> stale; else accepted (first one wins, even
    /// from an actor declared dead or from the original holder of a re-issued task). A stale or rejected group
    /// from the actor currently holding the task re-queues it.
    ///
    /// `check` (e.g. `GroupCheck.problem`) judges the group's content against the task after the group-size
    /// check: a problem makes it `.rejected` (counted in `invalid` too) with the problem as detail.
    public mutating func accept(_ group: RolloutGroup, now: UInt64, weightVersion: UInt64,
                                check: ((RolloutGroup, WorkItem) -> String?)? = nil) -> Ack {
        heartbeat(actorId: group.actorId, now: now)
        let id = group.taskId
        if let on = quarantinedBelow[id] {
            counts.rejected += 1
            return Ack(taskId: id, status: .rejected, detail: "task \(id) is quarantined (it failed on \(on.joined(separator: ", ")))")
        }
        if isForgottenDone(id) {
            counts.duplicate += 1
            return Ack(taskId: id, status: .duplicate, detail: "task \(id) already has an accepted group")
        }
        guard var t = tasks[id] else {
            counts.rejected += 1
            return Ack(taskId: id, status: .rejected, detail: "unknown task \(id)")
        }
        if t.state == .done {
            counts.duplicate += 1
            return Ack(taskId: id, status: .duplicate, detail: "task \(id) already has an accepted group")
        }
        if t.state == .quarantined {
            counts.rejected += 1
            return Ack(taskId: id, status: .rejected, detail: "task \(id) is quarantined (it failed on \(t.failedOn.sorted().joined(separator: ", ")))")
        }
        func refuse(_ status: AckStatus, _ detail: String, _ ledger: inout TaskLedger) -> Ack {
            if status == .stale { ledger.counts.stale += 1 } else { ledger.counts.rejected += 1 }
            if case .inFlight(let holder, _) = t.state, holder == group.actorId { ledger.requeue(id) }
            return Ack(taskId: id, status: status, detail: detail)
        }
        if group.completions.count != Int(t.item.groupSize) {
            return refuse(.rejected, "task \(id): \(group.completions.count) completions, expected group size \(t.item.groupSize)", &self)
        }
        if let check, let problem = check(group, t.item) {
            counts.invalid += 1
            return refuse(.rejected, "task \(id): \(problem)", &self)
        }
        if group.weightVersion > weightVersion {
            return refuse(.rejected, "task \(id): weight version \(group.weightVersion) is newer than the learner's \(weightVersion)", &self)
        }
        if weightVersion - group.weightVersion > config.maxLag {
            return refuse(.stale, "task \(id): weight version \(group.weightVersion) is \(weightVersion - group.weightVersion) behind \(weightVersion) (max_lag \(config.maxLag))", &self)
        }
        switch t.state {
        case .inFlight(let holder, _): actors[holder]?.tasks.remove(id)
        case .pending: pendingTotal -= 1  // re-queued, then answered by the original actor: its queue entry is skipped
        case .done, .quarantined: break
        }
        t.state = .done
        t.item.promptTokens = []
        tasks[id] = t
        counts.accepted += 1
        advanceWatermark()
        return Ack(taskId: id, status: .accepted)
    }
}
