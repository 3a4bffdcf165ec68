import Foundation
import Learner
import Prometheus

/// The learner's Prometheus metrics (names in docs/OPERATIONS.md "Metrics"), set from its status once a second.
/// Counters follow the ledger's totals (incremented by the difference, so they only grow, as Prometheus
/// counters must); per-actor gauges carry an `actor` label and are dropped when the actor leaves.
public final class LearnerMetrics: @unchecked Sendable {  // `update` runs on the learner's network thread only
    public let registry: PrometheusCollectorRegistry
    let step, stepsTotal, weightVersion, eta, reward, selfCertainty, kl, loss, tokensPerSecond, evalAccuracy: Gauge
    let liveActors, pending, inFlight, waiting, resident: Gauge
    let groups: [String: Counter]
    let reissued, dead, malformed, bytesSent: Counter
    private var last: LearnerStatus?
    private var actorGauges: [String: (version: Gauge, tps: Gauge, tasks: Gauge)] = [:]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        let r = registry
        step = r.makeGauge(descriptor: metric("rlif_step", "Training steps completed."))
        stepsTotal = r.makeGauge(descriptor: metric("rlif_total_steps", "Training steps of the run."))
        weightVersion = r.makeGauge(descriptor: metric("rlif_weight_version", "Weight version the learner serves."))
        eta = r.makeGauge(descriptor: metric("rlif_eta_seconds", "Seconds left at the mean pace so far."))
        reward = r.makeGauge(descriptor: metric("rlif_reward_mean", "Mean reward of the last step."))
        selfCertainty = r.makeGauge(descriptor: metric("rlif_self_certainty", "Mean self-certainty of the last step's completions."))
        kl = r.makeGauge(descriptor: metric("rlif_kl", "Mean KL to the reference of the last step."))
        loss = r.makeGauge(descriptor: metric("rlif_loss", "Loss of the last step."))
        tokensPerSecond = r.makeGauge(descriptor: metric("rlif_tokens_per_second", "Trained tokens per second of wall time, last step."))
        evalAccuracy = r.makeGauge(descriptor: metric("rlif_eval_accuracy", "Held-out accuracy of the last evaluation."))
        liveActors = r.makeGauge(descriptor: metric("rlif_live_actors", "Actors the learner hears from."))
        pending = r.makeGauge(descriptor: metric("rlif_tasks_pending", "Tasks waiting for an actor."))
        inFlight = r.makeGauge(descriptor: metric("rlif_tasks_in_flight", "Tasks held by actors."))
        waiting = r.makeGauge(descriptor: metric("rlif_groups_waiting", "Accepted groups waiting for their step to train."))
        resident = r.makeGauge(descriptor: metric("rlif_resident_memory_bytes", "Resident memory of the learner process."))
        groups = Dictionary(uniqueKeysWithValues: ["accepted", "duplicate", "stale", "rejected"].map {
            ($0, r.makeCounter(descriptor: metric("rlif_groups_total", "Rollout groups received, by outcome."), labels: [("status", $0)]))
        })
        reissued = r.makeCounter(descriptor: metric("rlif_tasks_reissued_total", "Tasks handed out again (timeout, dead or restarted actor)."))
        dead = r.makeCounter(descriptor: metric("rlif_actors_declared_dead_total", "Actors declared dead after missed heartbeats."))
        malformed = r.makeCounter(descriptor: metric("rlif_malformed_messages_total", "Messages refused as malformed."))
        bytesSent = r.makeCounter(descriptor: metric("rlif_weight_bytes_sent_total", "Snapshot bytes sent to actors."))
    }

    public func update(_ s: LearnerStatus) {
        step.set(Double(s.completedSteps))
        stepsTotal.set(Double(s.totalSteps))
        weightVersion.set(Double(s.weightVersion))
        if let v = s.etaSeconds { eta.set(v) }
        if let v = s.rewardMean { reward.set(v) }
        if let v = s.selfCertainty { selfCertainty.set(v) }
        if let v = s.kl { kl.set(v) }
        if let v = s.loss { loss.set(v) }
        if let v = s.tokensPerSecond { tokensPerSecond.set(v) }
        if let v = s.evalAccuracy { evalAccuracy.set(v) }
        liveActors.set(Double(s.actors.count))
        pending.set(Double(s.tasksPending))
        inFlight.set(Double(s.tasksInFlight))
        waiting.set(Double(s.groupsWaiting))
        if let m = s.residentBytes { resident.set(Double(m)) }
        func grow(_ c: Counter, _ now: Int, _ before: Int?) {
            let d = now - (before ?? 0)
            if d > 0 { c.increment(by: Int64(d)) }
        }
        grow(groups["accepted"]!, s.groupsAccepted, last?.groupsAccepted)
        grow(groups["duplicate"]!, s.groupsDuplicate, last?.groupsDuplicate)
        grow(groups["stale"]!, s.groupsStale, last?.groupsStale)
        grow(groups["rejected"]!, s.groupsRejected, last?.groupsRejected)
        grow(reissued, s.tasksReissued, last?.tasksReissued)
        grow(dead, s.actorsDeclaredDead, last?.actorsDeclaredDead)
        grow(malformed, s.malformedMessages, last?.malformedMessages)
        grow(bytesSent, s.weightBytesSent, last?.weightBytesSent)
        last = s
        let ids = Set(s.actors.map(\.id))
        for (id, g) in actorGauges where !ids.contains(id) {
            registry.unregisterGauge(g.version); registry.unregisterGauge(g.tps); registry.unregisterGauge(g.tasks)
            actorGauges[id] = nil
        }
        for a in s.actors {
            let g = actorGauges[a.id] ?? (
                registry.makeGauge(descriptor: metric("rlif_actor_weight_version", "Weight version each actor last reported."), labels: [("actor", a.id)]),
                registry.makeGauge(descriptor: metric("rlif_actor_tokens_per_second", "Generated tokens per second of each actor's last group."), labels: [("actor", a.id)]),
                registry.makeGauge(descriptor: metric("rlif_actor_tasks_held", "Tasks each actor holds."), labels: [("actor", a.id)]))
            actorGauges[a.id] = g
            g.version.set(Double(a.weightVersion))
            g.tps.set(a.tokensPerSecond)
            g.tasks.set(Double(a.tasksHeld))
        }
    }
}

/// A metric's full name (`rlif_…`, counters ending in `_total`) and its HELP text.
func metric(_ name: String, _ help: String) -> MetricNameDescriptor {
    MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
}
