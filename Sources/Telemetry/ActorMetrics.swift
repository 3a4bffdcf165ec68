import Actor
import Foundation
import Prometheus
import Training

/// An actor's Prometheus metrics (docs/OPERATIONS.md "Metrics"), set from its summary as it changes.
public final class ActorMetrics: @unchecked Sendable {  // `update` runs on the actor's thread only
    public let registry: PrometheusCollectorRegistry
    let version, tokensPerSecond, resident: Gauge
    let sent, acked, resends, reconnects, bytes: Counter
    private var last: ActorSummary?

    public init(actorId: String, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        let r = registry, l = [("actor", actorId)]
        version = r.makeGauge(descriptor: metric("rlif_actor_weight_version", "Weight version this actor samples with."), labels: l)
        tokensPerSecond = r.makeGauge(descriptor: metric("rlif_actor_tokens_per_second", "Generated tokens per second of the last group."), labels: l)
        resident = r.makeGauge(descriptor: metric("rlif_resident_memory_bytes", "Resident memory of the actor process."), labels: l)
        sent = r.makeCounter(descriptor: metric("rlif_actor_groups_sent_total", "Rollout groups sent (resends not counted)."), labels: l)
        acked = r.makeCounter(descriptor: metric("rlif_actor_groups_acked_total", "Rollout groups the learner acknowledged."), labels: l)
        resends = r.makeCounter(descriptor: metric("rlif_actor_resends_total", "Groups sent again after no acknowledgement."), labels: l)
        reconnects = r.makeCounter(descriptor: metric("rlif_actor_reconnects_total", "Sessions with the learner after the first."), labels: l)
        bytes = r.makeCounter(descriptor: metric("rlif_actor_weight_bytes_received_total", "Snapshot bytes received."), labels: l)
    }

    public func update(_ s: ActorSummary) {
        version.set(Double(s.weightVersionsInstalled.last ?? 0))
        tokensPerSecond.set(s.tokensPerSecond)
        if let m = SystemMemory.resident()?.current { resident.set(Double(m)) }
        func grow(_ c: Counter, _ now: Int, _ before: Int?) { if now > (before ?? 0) { c.increment(by: Int64(now - (before ?? 0))) } }
        grow(sent, s.groupsSent, last?.groupsSent)
        grow(acked, s.groupsAcked, last?.groupsAcked)
        grow(resends, s.resends, last?.resends)
        grow(reconnects, s.reconnects, last?.reconnects)
        grow(bytes, s.weightBytesReceived, last?.weightBytesReceived)
        last = s
    }
}
