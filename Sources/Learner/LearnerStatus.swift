import Foundation
import Scheduling
import Training

/// How a running learner is doing: what `rlif status` prints and `/metrics` exports. Sent as JSON in a
/// `StatusReply` (snake_case keys, docs/PROTOCOL.md); built once a second on the learner's network thread.
public struct LearnerStatus: Codable, Sendable, Equatable {
    public var runId: String
    public var completedSteps: Int
    public var totalSteps: Int
    public var weightVersion: UInt64
    /// Mean seconds per step of the steps this learner trained (nil before the first).
    public var secondsPerStep: Double?
    /// secondsPerStep × steps left.
    public var etaSeconds: Double?
    public var groupsAccepted: Int
    public var groupsDuplicate: Int
    public var groupsStale: Int
    public var groupsRejected: Int
    public var tasksReissued: Int
    public var actorsDeclaredDead: Int
    public var malformedMessages: Int
    /// Tasks waiting for an actor, and held by actors.
    public var tasksPending: Int
    public var tasksInFlight: Int
    /// Groups of future steps received and waiting for their step to train.
    public var groupsWaiting: Int
    /// Snapshot bytes sent to actors since the start.
    public var weightBytesSent: Int
    /// This process's resident memory (nil where /proc is not readable).
    public var residentBytes: Int?
    /// The last training step's numbers.
    public var rewardMean: Double?
    public var selfCertainty: Double?
    public var kl: Double?
    public var loss: Double?
    /// Trained tokens per second of wall time over the last step (sample wait + training).
    public var tokensPerSecond: Double?
    public var evalAccuracy: Double?
    public var actors: [ActorStatus]

    enum CodingKeys: String, CodingKey {
        case runId = "run_id", completedSteps = "completed_steps", totalSteps = "total_steps"
        case weightVersion = "weight_version", secondsPerStep = "seconds_per_step", etaSeconds = "eta_seconds"
        case groupsAccepted = "groups_accepted", groupsDuplicate = "groups_duplicate", groupsStale = "groups_stale"
        case groupsRejected = "groups_rejected", tasksReissued = "tasks_reissued"
        case actorsDeclaredDead = "actors_declared_dead", malformedMessages = "malformed_messages"
        case tasksPending = "tasks_pending", tasksInFlight = "tasks_in_flight", groupsWaiting = "groups_waiting"
        case weightBytesSent = "weight_bytes_sent", residentBytes = "resident_bytes", rewardMean = "reward_mean"
        case selfCertainty = "self_certainty", kl, loss, tokensPerSecond = "tokens_per_second"
        case evalAccuracy = "eval_accuracy", actors
    }
}

/// One live actor as the learner sees it.
public struct ActorStatus: Codable, Sendable, Equatable {
    public var id: String
    public var host: String
    public var pid: UInt32
    /// The weight version its last heartbeat or group named.
    public var weightVersion: UInt64
    /// Generated tokens per second of its last group (decode + prefill time as it measured).
    public var tokensPerSecond: Double
    public var tasksHeld: Int
    public var groupsAccepted: Int
    public var bytesSent: Int
    /// Seconds since the learner last heard from it.
    public var lastHeardSecondsAgo: Double

    enum CodingKeys: String, CodingKey {
        case id, host, pid, weightVersion = "weight_version", tokensPerSecond = "tokens_per_second"
        case tasksHeld = "tasks_held", groupsAccepted = "groups_accepted", bytesSent = "bytes_sent"
        case lastHeardSecondsAgo = "last_heard_seconds_ago"
    }
}

/// What the learner knows of each actor beyond the ledger's credits and tasks: host, versions, speed, bytes.
/// Pure (times are the caller's monotonic milliseconds); tests: `LearnerStatusTests`.
public struct ActorBoard: Sendable {
    struct Entry: Sendable {
        var host = "", pid: UInt32 = 0, version: UInt64 = 0, tokensPerSecond = 0.0
        var groups = 0, bytes = 0, lastHeardMs: UInt64 = 0
    }
    private(set) var entries: [String: Entry] = [:]
    /// Snapshot bytes sent to all actors.
    public private(set) var bytesSent = 0

    public init() {}

    public mutating func hello(id: String, host: String, pid: UInt32, version: UInt64, now: UInt64) {
        var e = entries[id] ?? Entry()
        e.host = host; e.pid = pid; e.version = version; e.lastHeardMs = now
        entries[id] = e
    }

    public mutating func heard(id: String, version: UInt64?, now: UInt64) {
        entries[id, default: Entry()].lastHeardMs = now
        if let v = version { entries[id]?.version = v }
    }

    /// An accepted group: `tokens` generated in `decodeMs` (decode + prefill).
    public mutating func accepted(id: String, version: UInt64, tokens: Int, decodeMs: Double, now: UInt64) {
        var e = entries[id] ?? Entry()
        e.groups += 1
        e.version = max(e.version, version)
        if decodeMs > 0 { e.tokensPerSecond = Double(tokens) / (decodeMs / 1000) }
        e.lastHeardMs = now
        entries[id] = e
    }

    public mutating func sent(id: String, bytes: Int) {
        entries[id, default: Entry()].bytes += bytes
        bytesSent += bytes
    }

    public mutating func left(id: String) { entries[id] = nil }

    /// The process id its last Hello named (nil when unknown).
    public func pid(of id: String) -> UInt32? { entries[id]?.pid }

    /// Rows for the actors in `ids` (the ledger's live actors), in that order.
    public func rows(ids: [String], tasksHeld: (String) -> Int, now: UInt64) -> [ActorStatus] {
        ids.map { id in
            let e = entries[id] ?? Entry()
            return ActorStatus(id: id, host: e.host, pid: e.pid, weightVersion: e.version, tokensPerSecond: e.tokensPerSecond,
                               tasksHeld: tasksHeld(id), groupsAccepted: e.groups, bytesSent: e.bytes,
                               lastHeardSecondsAgo: Double(now &- min(now, e.lastHeardMs)) / 1000)
        }
    }
}

/// The step-level half of the status: pace and the last records. Pure; tests: `LearnerStatusTests`.
public struct StepBoard: Sendable {
    public private(set) var secondsSum = 0.0
    public private(set) var steps = 0
    public private(set) var last: StepRecord?
    public private(set) var lastEval: EvalRecord?

    public init() {}

    public mutating func add(_ r: StepResult) {
        secondsSum += r.record.totalSeconds
        steps += 1
        last = r.record
        if let e = r.eval { lastEval = e }
    }

    public var secondsPerStep: Double? { steps > 0 ? secondsSum / Double(steps) : nil }
}

extension LearnerStatus {
    /// One line about the actors: live count, how many hold the current weights, bytes sent, the slowest.
    public var actorsLine: String {
        let current = actors.filter { $0.weightVersion >= weightVersion }.count
        var s = "actors: \(actors.count) live, \(current) on weights v\(weightVersion), \(String(format: "%.1f", Double(weightBytesSent) / 1e6)) MB of weights sent"
        if let slow = actors.filter({ $0.tokensPerSecond > 0 }).min(by: { $0.tokensPerSecond < $1.tokensPerSecond }) {
            s += ", slowest \(slow.id) \(String(format: "%.1f", slow.tokensPerSecond)) tok/s"
        }
        return s
    }

    /// Plain text: a summary and one row per actor (`rlif status` without --json).
    public var table: String {
        func f(_ v: Double?, _ d: Int) -> String { v.map { String(format: "%.\(d)f", $0) } ?? "-" }
        func dur(_ s: Double?) -> String {
            guard let s else { return "-" }
            let t = Int(s.rounded())
            return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : t >= 60 ? String(format: "%dm%02ds", t / 60, t % 60) : "\(t)s"
        }
        var lines = [
            "run \(runId): step \(completedSteps)/\(totalSteps), weights v\(weightVersion), ETA \(dur(etaSeconds)) (\(f(secondsPerStep, 1)) s/step)",
            "last step: reward \(f(rewardMean, 4))  self-certainty \(f(selfCertainty, 4))  kl \(f(kl, 5))  loss \(f(loss, 5))  \(f(tokensPerSecond, 0)) tok/s  eval accuracy \(f(evalAccuracy, 3))",
            "groups: accepted \(groupsAccepted), duplicate \(groupsDuplicate), stale \(groupsStale), rejected \(groupsRejected); tasks re-issued \(tasksReissued), pending \(tasksPending), in flight \(tasksInFlight); actors declared dead \(actorsDeclaredDead)",
            "weights sent \(weightBytesSent) bytes; resident memory \(residentBytes.map { String(format: "%.2f GiB", Double($0) / Double(1 << 30)) } ?? "-")",
            "",
        ]
        let header = ["actor", "host", "pid", "weights", "tok/s", "tasks", "groups", "bytes sent", "last heard"]
        var rows = [header]
        for a in actors {
            rows.append([a.id, a.host, "\(a.pid)", "v\(a.weightVersion)", f(a.tokensPerSecond, 1), "\(a.tasksHeld)",
                         "\(a.groupsAccepted)", "\(a.bytesSent)", String(format: "%.1fs ago", a.lastHeardSecondsAgo)])
        }
        if actors.isEmpty { rows.append(["(no live actors)"] + Array(repeating: "", count: header.count - 1)) }
        let widths = header.indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
        for r in rows {
            lines.append(r.enumerated().map { i, c in c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
        }
        return lines.joined(separator: "\n")
    }
}
