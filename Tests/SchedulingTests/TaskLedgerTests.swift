import TestSupport
import Testing
import Wire
@testable import Scheduling

/// TaskLedger: credits, deaths, re-issues, and that every task is trained on exactly once.
@Suite struct TaskLedgerTests {
    static let config = TaskLedger.Config(groupSize: 4, heartbeatTimeoutMs: 1000, taskTimeoutMs: 0, maxLag: 1)

    static func prompt(_ i: Int) -> WorkItem {
        WorkItem(taskId: 0, promptId: "p\(i)", promptTokens: [1, UInt32(i)], groupSize: 0, seed: UInt64(i))
    }

    static func group(_ task: UInt64, actor: String, version: UInt64 = 5, size: Int = 4) -> RolloutGroup {
        let c = Completion(tokens: [7], logprobs: [-1], selfCertainty: [2], reward: 2, finishReason: .eos)
        return RolloutGroup(taskId: task, actorId: actor, weightVersion: version, completions: Array(repeating: c, count: size))
    }

    static func ledger(tasks: Int, config: TaskLedger.Config = config) -> (TaskLedger, [UInt64]) {
        var l = TaskLedger(config: config)
        let ids = (0..<tasks).map { l.submit(prompt($0)) }
        return (l, ids)
    }

    @Test func dispatchRespectsCreditsRoundRobin() {
        var (l, ids) = Self.ledger(tasks: 5)
        #expect(ids == [1, 2, 3, 4, 5])
        l.hello(actorId: "A", now: 0)
        l.hello(actorId: "B", now: 0)
        #expect(l.dispatch(now: 0, weightVersion: 5).isEmpty, "no credits, no work")
        l.addCredits(actorId: "A", credits: 2, now: 1)
        l.addCredits(actorId: "B", credits: 1, now: 1)
        let a = l.dispatch(now: 1, weightVersion: 5)
        #expect(a.map(\.actorId) == ["A", "B", "A"])
        #expect(a.map(\.item.taskId) == [1, 2, 3])
        #expect(a.allSatisfy { $0.item.groupSize == 4 && $0.item.minWeightVersion == 4 })
        #expect(a[0].item.promptTokens == [1, 0] && a[2].item.promptId == "p2")
        #expect(l.pendingCount == 2 && l.inFlightCount == 3)
        #expect(l.credits(actorId: "A") == 0 && l.credits(actorId: "B") == 0)
        #expect(l.dispatch(now: 2, weightVersion: 5).isEmpty)
        l.addCredits(actorId: "B", credits: 10, now: 3)
        #expect(l.dispatch(now: 3, weightVersion: 5).map(\.item.taskId) == [4, 5])
        #expect(l.credits(actorId: "B") == 8)
        let ghost = l.addCredits(actorId: "ghost", credits: 1, now: 3)
        #expect(!ghost, "unknown actors must say hello first")
    }

    @Test func actorDeathMidTaskReissuesExactlyOnce() {
        var (l, _) = Self.ledger(tasks: 1)
        l.hello(actorId: "A", now: 0)
        l.addCredits(actorId: "A", credits: 1, now: 0)
        let task = l.dispatch(now: 0, weightVersion: 5)[0].item.taskId
        l.hello(actorId: "B", now: 500)
        l.heartbeat(actorId: "A", now: 900)
        l.heartbeat(actorId: "B", now: 1500)
        #expect(l.expire(now: 1900) == TaskLedger.Expiry(), "1000 ms of silence is not yet death")
        let e = l.expire(now: 1901)
        #expect(e.deadActors == ["A"] && e.reissued == [task])
        #expect(l.expire(now: 1901) == TaskLedger.Expiry(), "expire is idempotent")
        #expect(l.expire(now: 5000).reissued.isEmpty, "a dead actor's task is re-issued once")
        #expect(l.counts.reissued == 1 && l.counts.deadActors == 2, "B died at 5000 too, holding nothing")
        #expect(l.pendingCount == 1)
        l.hello(actorId: "B", now: 5000)
        l.addCredits(actorId: "B", credits: 1, now: 5000)
        let again = l.dispatch(now: 5000, weightVersion: 5)
        #expect(again.map(\.actorId) == ["B"] && again[0].item.taskId == task)
        #expect(l.attempts(task) == 2)
        #expect(l.accept(Self.group(task, actor: "B"), now: 5100, weightVersion: 5).status == .accepted)
        // The dead actor was only slow: its late answer must not be trained on a second time.
        let late = l.accept(Self.group(task, actor: "A"), now: 5200, weightVersion: 5)
        #expect(late.status == .duplicate)
        #expect(l.counts.accepted == 1 && l.counts.duplicate == 1)
        #expect(l.isDrained && l.inFlightCount == 0 && l.pendingCount == 0)
    }

    @Test func originalAnswerAfterReissueWinsAndCopyIsDuplicate() {
        var (l, _) = Self.ledger(tasks: 2)
        l.hello(actorId: "A", now: 0)
        l.addCredits(actorId: "A", credits: 2, now: 0)
        let ids = l.dispatch(now: 0, weightVersion: 5).map(\.item.taskId)
        _ = l.expire(now: 2000)  // A declared dead: both tasks pending again
        #expect(l.pendingCount == 2)
        // A's answer to the first task arrives while it is pending: accepted, and the pending copy is cancelled.
        #expect(l.accept(Self.group(ids[0], actor: "A"), now: 2001, weightVersion: 5).status == .accepted)
        #expect(l.pendingCount == 1)
        l.hello(actorId: "B", now: 2002)
        l.addCredits(actorId: "B", credits: 5, now: 2002)
        let b = l.dispatch(now: 2002, weightVersion: 5)
        #expect(b.map(\.item.taskId) == [ids[1]], "the accepted task is not handed out again")
        // A's answer to the second task beats B's: A wins, B's becomes a duplicate and B holds nothing.
        #expect(l.accept(Self.group(ids[1], actor: "A"), now: 2003, weightVersion: 5).status == .accepted)
        #expect(l.tasksInFlight(actorId: "B") == [])
        #expect(l.accept(Self.group(ids[1], actor: "B"), now: 2004, weightVersion: 5).status == .duplicate)
        // A resend of an acked group (the ack was lost) is a duplicate too.
        #expect(l.accept(Self.group(ids[0], actor: "A"), now: 2005, weightVersion: 5).status == .duplicate)
        #expect(l.counts.accepted == 2 && l.counts.duplicate == 2 && l.isDrained)
    }

    /// A task the actor stops listing in its heartbeats (it failed there, or the work item was lost) is re-queued
    /// once it is older than the grace, not before (it may still be on its way), and never while listed.
    @Test func heartbeatThatNoLongerListsATaskReissuesIt() {
        var (l, ids) = Self.ledger(tasks: 3)
        l.hello(actorId: "A", now: 0)
        l.addCredits(actorId: "A", credits: 3, now: 0)
        #expect(l.dispatch(now: 10, weightVersion: 5).map(\.item.taskId) == ids)
        // Young tasks missing from the list are left alone; listed ones always are.
        #expect(l.reconcile(actorId: "A", holding: [ids[0]], now: 500, graceMs: 1000).isEmpty)
        #expect(l.reconcile(actorId: "A", holding: ids, now: 5000, graceMs: 1000).isEmpty)
        // Task 2 failed on the actor: gone from its heartbeat, past the grace → back to the queue, once.
        #expect(l.reconcile(actorId: "A", holding: [ids[0], ids[2]], now: 1200, graceMs: 1000) == [ids[1]])
        #expect(l.reconcile(actorId: "A", holding: [ids[0], ids[2]], now: 1300, graceMs: 1000).isEmpty)
        #expect(l.counts.reissued == 1 && l.pendingCount == 1 && l.holder(ids[1]) == nil)
        #expect(l.tasksInFlight(actorId: "A") == [ids[0], ids[2]])
        // Re-issued to whoever has credits; the answer is accepted once.
        l.hello(actorId: "B", now: 1300)
        l.addCredits(actorId: "B", credits: 1, now: 1300)
        #expect(l.dispatch(now: 1300, weightVersion: 5).map(\.actorId) == ["B"])
        #expect(l.accept(Self.group(ids[1], actor: "B"), now: 1400, weightVersion: 5).status == .accepted)
        // Unknown actors reconcile nothing.
        #expect(l.reconcile(actorId: "Z", holding: [], now: 9999, graceMs: 0).isEmpty)
    }

    /// Found by `scripts/chaos --proxy "20 5 1"` (connections cut mid-run; libzmq reconnects by itself): the actor
    /// waited for an answer to a WorkRequest the learner never saw (or for a WorkItem lost on the way), the
    /// learner held 0 credits for it, and the run stalled with tasks queued ("6 tasks queued, 0 in flight; actors:
    /// 0 credits"). The heartbeat's `credits_outstanding` makes both counts agree again.
    @Test func creditsAreReconciledWithTheActorsCount() {
        // A WorkRequest lost: the actor waits for 1, the learner holds 0 → 1, and a task goes out.
        do {
            var (l, _) = Self.ledger(tasks: 2)
            l.hello(actorId: "A", now: 0)
            #expect(l.reconcileCredits(actorId: "A", outstanding: 1, holding: [], now: 100, graceMs: 1000)! == (0, 1))
            #expect(l.dispatch(now: 100, weightVersion: 1).map(\.actorId) == ["A"])
            #expect(l.credits(actorId: "A") == 0)
        }
        // A WorkItem lost: while it may still be on its way nothing changes; after the grace `reconcile`
        // re-queues the task and the credit it used comes back, so the task is issued again.
        do {
            var (l, ids) = Self.ledger(tasks: 1)
            l.hello(actorId: "A", now: 0)
            l.addCredits(actorId: "A", credits: 1, now: 0)
            #expect(l.dispatch(now: 10, weightVersion: 1).map(\.item.taskId) == ids)
            #expect(l.reconcileCredits(actorId: "A", outstanding: 1, holding: [], now: 500, graceMs: 1000) == nil,
                    "in transit: 0 credits + 1 on its way == 1 outstanding")
            #expect(l.reconcile(actorId: "A", holding: [], now: 1500, graceMs: 1000) == ids)
            #expect(l.reconcileCredits(actorId: "A", outstanding: 1, holding: [], now: 1500, graceMs: 1000)! == (0, 1))
            #expect(l.dispatch(now: 1500, weightVersion: 1).map(\.item.taskId) == ids)
            #expect(l.counts.reissued == 1 && l.counts.issued == 2)
        }
        // Received and held (or answered): the counts agree, nothing changes.
        do {
            var (l, ids) = Self.ledger(tasks: 2)
            l.hello(actorId: "A", now: 0)
            l.addCredits(actorId: "A", credits: 2, now: 0)
            _ = l.dispatch(now: 0, weightVersion: 1)
            #expect(l.reconcileCredits(actorId: "A", outstanding: 0, holding: ids, now: 5000, graceMs: 1000) == nil)
            #expect(l.reconcileCredits(actorId: "A", outstanding: 1, holding: [ids[0]], now: 100, graceMs: 1000) == nil,
                    "task 2 on its way answers the second credit")
        }
        // One too many: the actor reconnected by itself and asked again while the old credit was still here.
        do {
            var (l, _) = Self.ledger(tasks: 0)
            l.hello(actorId: "A", now: 0)
            l.addCredits(actorId: "A", credits: 1, now: 0)
            l.addCredits(actorId: "A", credits: 1, now: 10)
            #expect(l.reconcileCredits(actorId: "A", outstanding: 1, holding: [], now: 20, graceMs: 1000)! == (2, 1))
            #expect(l.credits(actorId: "A") == 1)
        }
        do {
            var (l, _) = Self.ledger(tasks: 1)
            #expect(l.reconcileCredits(actorId: "Z", outstanding: 3, holding: [], now: 0, graceMs: 0) == nil, "unknown actor")
        }
    }

    @Test func heartbeatsKeepAnActorAlive() {
        var (l, _) = Self.ledger(tasks: 1)
        l.hello(actorId: "A", now: 0)
        l.addCredits(actorId: "A", credits: 1, now: 0)
        _ = l.dispatch(now: 0, weightVersion: 1)
        for t in stride(from: UInt64(500), through: 10_000, by: 500) {
            l.heartbeat(actorId: "A", now: t)
            #expect(l.expire(now: t + 999).deadActors.isEmpty)
        }
        #expect(l.tasksInFlight(actorId: "A") == [1] && l.counts.reissued == 0)
        let known = l.heartbeat(actorId: "A", now: 5000)
        #expect(known, "an older timestamp does not move lastSeen back")
        #expect(l.expire(now: 10_999).deadActors.isEmpty)
    }

    @Test func staleGroupIsDroppedAndTaskReissued() {
        var (l, _) = Self.ledger(tasks: 1)
        l.hello(actorId: "A", now: 0)
        l.addCredits(actorId: "A", credits: 2, now: 0)
        let task = l.dispatch(now: 0, weightVersion: 3)[0].item.taskId
        let ack = l.accept(Self.group(task, actor: "A", version: 3), now: 10, weightVersion: 5)
        #expect(ack.status == .stale)
        #expect(ack.detail.contains("max_lag 1"), "\(ack.detail)")
        #expect(l.pendingCount == 1 && l.counts.stale == 1 && l.counts.reissued == 1)
        let again = l.dispatch(now: 11, weightVersion: 5)
        #expect(again.map(\.item.taskId) == [task] && again[0].item.minWeightVersion == 4)
        // Exactly max_lag behind is still acceptable.
        #expect(l.accept(Self.group(task, actor: "A", version: 4), now: 12, weightVersion: 5).status == .accepted)
    }

    @Test func malformedGroupsAreRejected() {
        var (l, _) = Self.ledger(tasks: 2)
        l.hello(actorId: "A", now: 0)
        l.addCredits(actorId: "A", credits: 2, now: 0)
        let ids = l.dispatch(now: 0, weightVersion: 5).map(\.item.taskId)
        let unknown = l.accept(Self.group(999, actor: "A"), now: 1, weightVersion: 5)
        #expect(unknown.status == .rejected && unknown.detail == "unknown task 999")
        let small = l.accept(Self.group(ids[0], actor: "A", size: 3), now: 2, weightVersion: 5)
        #expect(small.status == .rejected && small.detail.contains("expected group size 4"))
        #expect(l.pendingCount == 1, "a rejected answer from the holder re-queues the task")
        let future = l.accept(Self.group(ids[1], actor: "A", version: 6), now: 3, weightVersion: 5)
        #expect(future.status == .rejected && future.detail.contains("newer"))
        // A rejected answer from someone who does not hold the task does not disturb the holder.
        l.hello(actorId: "B", now: 4)
        l.addCredits(actorId: "B", credits: 1, now: 4)
        let b = l.dispatch(now: 4, weightVersion: 5)
        #expect(b.count == 1)
        let t = b[0].item.taskId
        #expect(l.accept(Self.group(t, actor: "A", size: 1), now: 5, weightVersion: 5).status == .rejected)
        #expect(l.holder(t) == "B")
        #expect(l.counts.rejected == 4 && l.counts.accepted == 0)
    }

    @Test func goodbyeAndRestartRequeueAtOnce() {
        var (l, _) = Self.ledger(tasks: 4)
        l.hello(actorId: "A", now: 0)
        l.addCredits(actorId: "A", credits: 2, now: 0)
        l.hello(actorId: "B", now: 0)
        l.addCredits(actorId: "B", credits: 2, now: 0)
        _ = l.dispatch(now: 0, weightVersion: 1)
        #expect(l.goodbye(actorId: "A") == [1, 3])
        #expect(l.actorIds == ["B"] && l.pendingCount == 2)
        // B restarts: hello again while holding tasks drops them back in the queue, credits reset.
        #expect(l.hello(actorId: "B", now: 10) == [2, 4])
        #expect(l.credits(actorId: "B") == 0 && l.pendingCount == 4)
        l.addCredits(actorId: "B", credits: 4, now: 11)
        #expect(Set(l.dispatch(now: 11, weightVersion: 1).map(\.item.taskId)) == [1, 2, 3, 4])
        #expect(l.counts.reissued == 4 && l.counts.issued == 8)
    }

    @Test func taskTimeoutReissuesWhileActorIsAlive() {
        var cfg = Self.config
        cfg.taskTimeoutMs = 300
        var (l, _) = Self.ledger(tasks: 1, config: cfg)
        l.hello(actorId: "A", now: 0)
        l.hello(actorId: "B", now: 0)
        l.addCredits(actorId: "A", credits: 1, now: 0)
        let task = l.dispatch(now: 0, weightVersion: 1)[0].item.taskId
        l.heartbeat(actorId: "A", now: 250); l.heartbeat(actorId: "B", now: 250)
        #expect(l.expire(now: 300).reissued.isEmpty)
        #expect(l.expire(now: 301) == TaskLedger.Expiry(deadActors: [], reissued: [task]))
        #expect(l.expire(now: 302).reissued.isEmpty)
        l.addCredits(actorId: "B", credits: 1, now: 302)
        #expect(l.dispatch(now: 302, weightVersion: 1).map(\.actorId) == ["B"])
        #expect(l.accept(Self.group(task, actor: "A", version: 1), now: 400, weightVersion: 1).status == .accepted)
        #expect(l.accept(Self.group(task, actor: "B", version: 1), now: 410, weightVersion: 1).status == .duplicate)
    }

    /// Random actors that die, restart, resend and answer late: every task is accepted exactly once and the
    /// counts add up.
    @Test func randomizedChaosTrainsEveryTaskExactlyOnce() {
        var rng = SeededGenerator(seed: 2026)
        var cfg = Self.config
        cfg.taskTimeoutMs = 4000
        var (l, ids) = Self.ledger(tasks: 300, config: cfg)
        var trained: [UInt64: Int] = [:]
        var holding: [String: [UInt64]] = [:]  // what each actor believes it holds (including after it "died")
        var alive: Set<String> = []
        let names = (0..<6).map { "actor-\($0)" }
        var now: UInt64 = 0
        var acks: [AckStatus: Int] = [:]
        for _ in 0..<20_000 where !l.isDrained {
            now += UInt64.random(in: 1...40, using: &rng)
            let who = names[Int.random(in: 0..<names.count, using: &rng)]
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<3:  // (re)start
                l.hello(actorId: who, now: now); alive.insert(who); holding[who] = []
            case 3..<5:  // goes silent for good (until a restart)
                alive.remove(who)
            case 5..<20:
                if alive.contains(who) { l.addCredits(actorId: who, credits: UInt32.random(in: 1...3, using: &rng), now: now) }
            case 20..<50:
                if alive.contains(who) { l.heartbeat(actorId: who, now: now) }
            default:  // answer one held task (maybe one taken away long ago), sometimes twice
                guard alive.contains(who) || Bool.random(using: &rng), var h = holding[who], !h.isEmpty else { break }
                let t = h.remove(at: Int.random(in: 0..<h.count, using: &rng))
                if Int.random(in: 0..<10, using: &rng) > 0 { holding[who] = h }
                let version: UInt64 = Int.random(in: 0..<20, using: &rng) == 0 ? 1 : 5
                let ack = l.accept(Self.group(t, actor: who, version: version), now: now, weightVersion: 5)
                acks[ack.status, default: 0] += 1
                if ack.status == .accepted { trained[t, default: 0] += 1 }
            }
            for a in l.dispatch(now: now, weightVersion: 5) { holding[a.actorId, default: []].append(a.item.taskId) }
            _ = l.expire(now: now)
            if alive.isEmpty { l.hello(actorId: "actor-0", now: now); alive.insert("actor-0"); holding["actor-0"] = [] }
        }
        #expect(l.isDrained, "not drained: \(l.pendingCount) pending, \(l.inFlightCount) in flight")
        #expect(trained.count == ids.count && trained.values.allSatisfy { $0 == 1 }, "a task was trained twice or never")
        let c = l.counts
        #expect(c.accepted == 300 && acks[.accepted] == 300)
        #expect(c.duplicate == acks[.duplicate, default: 0] && c.stale == acks[.stale, default: 0])
        #expect(c.issued == 300 + c.reissued - l.pendingCount)
        #expect(c.duplicate > 0 && c.reissued > 0 && c.stale > 0, "the chaos exercised every path: \(c)")
    }

    // MARK: Quarantine (issue 15: a prompt both actors fail on was re-issued forever)

    /// A fails the task, it goes to B, B fails it: quarantined, never dispatched again, a late group is rejected,
    /// and the ledger still drains (accepted + quarantined = submitted).
    @Test func taskFailingOnTwoActorsIsQuarantined() {
        var (l, ids) = Self.ledger(tasks: 2)
        l.hello(actorId: "A", now: 0)
        l.hello(actorId: "B", now: 0)
        l.addCredits(actorId: "A", credits: 1, now: 0)
        let first = l.dispatch(now: 0, weightVersion: 5)
        #expect(first.map(\.item.taskId) == [ids[0]] && first[0].actorId == "A")
        #expect(l.fail(taskId: ids[0], actorId: "A", now: 10) == .reissued)
        #expect(l.pendingCount == 2 && l.tasksInFlight(actorId: "A").isEmpty)
        l.addCredits(actorId: "B", credits: 1, now: 20)
        #expect(l.dispatch(now: 20, weightVersion: 5).map(\.item.taskId) == [ids[0]], "re-issued first")
        #expect(l.fail(taskId: ids[0], actorId: "B", now: 30) == .quarantined(failedOn: ["A", "B"]))
        #expect(l.isQuarantined(ids[0]) && l.tasksInFlight(actorId: "B").isEmpty)
        #expect(l.pendingCount == 1)
        l.addCredits(actorId: "A", credits: 5, now: 40)
        l.addCredits(actorId: "B", credits: 5, now: 40)
        #expect(l.dispatch(now: 40, weightVersion: 5).map(\.item.taskId) == [ids[1]], "a quarantined task is never issued again")
        #expect(l.fail(taskId: ids[0], actorId: "A", now: 50) == .ignored, "counted once")
        let late = l.accept(Self.group(ids[0], actor: "A"), now: 60, weightVersion: 5)
        #expect(late.status == .rejected && late.detail.contains("quarantined"))
        #expect(l.accept(Self.group(ids[1], actor: "A"), now: 70, weightVersion: 5).status == .accepted)
        #expect(l.isDrained)
        #expect(l.counts.quarantined == 1 && l.counts.failures == 2 && l.counts.accepted == 1)
    }

    /// One actor alone: the task is retried on it, but not forever (quarantineFailures).
    @Test func aLoneActorFailingATaskThreeTimesQuarantinesIt() {
        var (l, ids) = Self.ledger(tasks: 1)
        l.hello(actorId: "A", now: 0)
        var outcomes: [TaskLedger.FailureOutcome] = []
        for k in 0..<5 {
            l.addCredits(actorId: "A", credits: 1, now: UInt64(k * 10))
            guard let a = l.dispatch(now: UInt64(k * 10), weightVersion: 5).first else { break }
            outcomes.append(l.fail(taskId: a.item.taskId, actorId: "A", now: UInt64(k * 10 + 5)))
        }
        #expect(outcomes == [.reissued, .reissued, .quarantined(failedOn: ["A"])])
        #expect(l.isQuarantined(ids[0]) && l.isDrained && l.pendingCount == 0)
    }

    /// Replayed race: A's failure report arrives after the heartbeat grace already took the task from A and gave it to
    /// B. The report counts (it did fail on A) without pulling the task from B; B's failure then quarantines it. And
    /// the other order: B answers before A's late report, which is then ignored.
    @Test func lateFailureReportFromAnEarlierHolder() {
        do {
            var (l, ids) = Self.ledger(tasks: 1)
            l.hello(actorId: "A", now: 0); l.hello(actorId: "B", now: 0)
            l.addCredits(actorId: "A", credits: 1, now: 0)
            _ = l.dispatch(now: 0, weightVersion: 5)
            #expect(l.reconcile(actorId: "A", holding: [], now: 2000, graceMs: 1000) == [ids[0]])
            l.addCredits(actorId: "B", credits: 1, now: 2001)
            #expect(l.dispatch(now: 2001, weightVersion: 5).map(\.actorId) == ["B"])
            #expect(l.fail(taskId: ids[0], actorId: "A", now: 2002) == .counted)
            #expect(l.holder(ids[0]) == "B", "still B's")
            #expect(l.fail(taskId: ids[0], actorId: "B", now: 2003) == .quarantined(failedOn: ["A", "B"]))
            #expect(l.isDrained)
        }
        do {
            var (l, ids) = Self.ledger(tasks: 1)
            l.hello(actorId: "A", now: 0); l.hello(actorId: "B", now: 0)
            l.addCredits(actorId: "A", credits: 1, now: 0)
            _ = l.dispatch(now: 0, weightVersion: 5)
            _ = l.reconcile(actorId: "A", holding: [], now: 2000, graceMs: 1000)
            l.addCredits(actorId: "B", credits: 1, now: 2001)
            _ = l.dispatch(now: 2001, weightVersion: 5)
            #expect(l.accept(Self.group(ids[0], actor: "B"), now: 2002, weightVersion: 5).status == .accepted)
            #expect(l.fail(taskId: ids[0], actorId: "A", now: 2003) == .ignored)
            #expect(l.counts.failures == 0 && l.counts.quarantined == 0 && l.isDone(ids[0]))
        }
        do {
            // A failure while the task waits in the queue (re-issued, not yet handed out) may quarantine it there.
            var (l, ids) = Self.ledger(tasks: 1)
            l.hello(actorId: "A", now: 0); l.hello(actorId: "B", now: 0)
            l.addCredits(actorId: "A", credits: 1, now: 0)
            _ = l.dispatch(now: 0, weightVersion: 5)
            #expect(l.fail(taskId: ids[0], actorId: "A", now: 1) == .reissued)
            #expect(l.fail(taskId: ids[0], actorId: "B", now: 2) == .quarantined(failedOn: ["A", "B"]))
            l.addCredits(actorId: "B", credits: 1, now: 3)
            #expect(l.dispatch(now: 3, weightVersion: 5).isEmpty && l.pendingCount == 0 && l.isDrained)
        }
    }

    /// The randomized chaos with failure reports mixed in (some from actors that no longer hold the task): every task
    /// ends accepted exactly once or quarantined, never both, and the ledger drains.
    @Test func randomizedChaosWithFailuresEndsEveryTaskAcceptedOrQuarantined() {
        var rng = SeededGenerator(seed: 1515)
        var cfg = Self.config
        cfg.taskTimeoutMs = 4000
        var (l, ids) = Self.ledger(tasks: 200, config: cfg)
        var trained: [UInt64: Int] = [:]
        var quarantined: Set<UInt64> = []
        var holding: [String: [UInt64]] = [:]
        let names = (0..<4).map { "actor-\($0)" }
        for n in names { l.hello(actorId: n, now: 0); holding[n] = [] }
        var now: UInt64 = 0
        for _ in 0..<40_000 where !l.isDrained {
            now += UInt64.random(in: 1...20, using: &rng)
            let who = names[Int.random(in: 0..<names.count, using: &rng)]
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<20: l.addCredits(actorId: who, credits: UInt32.random(in: 1...2, using: &rng), now: now)
            case 20..<50: l.heartbeat(actorId: who, now: now)
            case 50..<60:  // sampling failed here (the task may have been taken away meanwhile)
                guard var h = holding[who], !h.isEmpty else { break }
                let t = h.remove(at: Int.random(in: 0..<h.count, using: &rng))
                holding[who] = h
                if case .quarantined = l.fail(taskId: t, actorId: who, now: now) {
                    #expect(quarantined.insert(t).inserted, "quarantined twice")
                }
            default:
                guard var h = holding[who], !h.isEmpty else { break }
                let t = h.remove(at: Int.random(in: 0..<h.count, using: &rng))
                holding[who] = h
                if l.accept(Self.group(t, actor: who), now: now, weightVersion: 5).status == .accepted { trained[t, default: 0] += 1 }
            }
            for a in l.dispatch(now: now, weightVersion: 5) { holding[a.actorId, default: []].append(a.item.taskId) }
            for n in names { l.heartbeat(actorId: n, now: now) }
            _ = l.expire(now: now)
        }
        #expect(l.isDrained, "not drained: \(l.pendingCount) pending, \(l.inFlightCount) in flight")
        #expect(trained.values.allSatisfy { $0 == 1 }, "a task was accepted twice")
        #expect(Set(trained.keys).isDisjoint(with: quarantined), "a task both trained and quarantined")
        #expect(Set(trained.keys).union(quarantined) == Set(ids), "a task neither trained nor quarantined")
        #expect(l.counts.quarantined == quarantined.count && !quarantined.isEmpty && l.counts.failures > quarantined.count)
    }
}

/// The ledger's memory is bounded by the open work, not by the run, and its content check rejects by name.
@Suite struct TaskLedgerBoundsTests {
    @Test func completedTasksAreForgottenBelowAWatermarkAndStillDeduped() {
        var l = TaskLedger(config: TaskLedgerTests.config)
        l.hello(actorId: "A", now: 0)
        var peak = 0
        var accepted: [UInt64] = []
        for step in 0..<200 {
            let ids = (0..<4).map { l.submit(TaskLedgerTests.prompt(step * 4 + $0)) }
            l.addCredits(actorId: "A", credits: 4, now: UInt64(step))
            _ = l.dispatch(now: UInt64(step), weightVersion: 5)
            for id in ids.reversed() {  // out of order within the step
                #expect(l.accept(TaskLedgerTests.group(id, actor: "A"), now: UInt64(step), weightVersion: 5).status == .accepted)
                peak = max(peak, l.retainedTaskCount)
            }
            accepted += ids
        }
        #expect(l.retainedTaskCount == 0, "every task below the watermark is forgotten")
        #expect(peak <= 4, "at most one step's tasks are held (peak \(peak))")
        #expect(l.isDone(accepted[0]) && l.isDone(accepted.last!))
        // A resend of a long-forgotten task is still a duplicate, never trained twice.
        #expect(l.accept(TaskLedgerTests.group(accepted[3], actor: "A"), now: 999, weightVersion: 5).status == .duplicate)
        #expect(l.accept(TaskLedgerTests.group(100_000, actor: "A"), now: 999, weightVersion: 5).status == .rejected)
        #expect(l.counts.accepted == 800 && l.counts.duplicate == 1)
    }

    /// A quarantined task does not hold the watermark (everything after it would be kept for the rest of the run),
    /// and once forgotten a late group for it is still refused as quarantined, not taken for a duplicate.
    @Test func aQuarantinedTaskDoesNotHoldTheWatermark() {
        var (l, ids) = TaskLedgerTests.ledger(tasks: 40)
        l.hello(actorId: "A", now: 0)
        for k in 0..<3 {  // a lone actor failing it three times quarantines it
            l.addCredits(actorId: "A", credits: 1, now: UInt64(k))
            #expect(l.dispatch(now: UInt64(k), weightVersion: 5).map(\.item.taskId) == [ids[0]])
            _ = l.fail(taskId: ids[0], actorId: "A", now: UInt64(k))
        }
        #expect(l.isQuarantined(ids[0]))
        for id in ids.dropFirst() {
            l.addCredits(actorId: "A", credits: 1, now: 10)
            _ = l.dispatch(now: 10, weightVersion: 5)
            #expect(l.accept(TaskLedgerTests.group(id, actor: "A"), now: 11, weightVersion: 5).status == .accepted)
        }
        #expect(l.isDrained && l.retainedTaskCount == 0, "held \(l.retainedTaskCount) tasks behind the quarantined one")
        let late = l.accept(TaskLedgerTests.group(ids[0], actor: "A"), now: 12, weightVersion: 5)
        #expect(late.status == .rejected && late.detail.contains("quarantined"), "\(late.detail)")
        #expect(l.isQuarantined(ids[0]) && !l.isDone(ids[0]) && l.isDone(ids[1]))
        #expect(l.accept(TaskLedgerTests.group(ids[1], actor: "A"), now: 12, weightVersion: 5).status == .duplicate)
    }

    @Test func aContentProblemRejectsTheGroupAndReissuesTheTask() {
        var (l, ids) = TaskLedgerTests.ledger(tasks: 1)
        l.hello(actorId: "A", now: 0)
        l.addCredits(actorId: "A", credits: 1, now: 0)
        _ = l.dispatch(now: 0, weightVersion: 5)
        let ack = l.accept(TaskLedgerTests.group(ids[0], actor: "A"), now: 1, weightVersion: 5, check: { g, item in
            g.promptId == item.promptId ? nil : "prompt_id '\(g.promptId)' is not the task's '\(item.promptId)'"
        })
        #expect(ack.status == .rejected && ack.detail.contains("prompt_id '' is not the task's 'p0'"), "\(ack.detail)")
        #expect(l.counts.invalid == 1 && l.counts.rejected == 1 && l.pendingCount == 1, "the task goes back to the queue")
        #expect(l.item(ids[0])?.promptId == "p0")
    }
}
