import Foundation
import Training
import Wire

/// The learner's status (`rlif status`, `/metrics`): built from the ledger, the actor board and the step board
/// on the network thread, which owns them.
extension LearnerServer {
    /// The status now. Call on the thread running `run()` (e.g. from `onStep`): its state is that thread's.
    public func status() -> LearnerStatus { currentStatus() }

    func currentStatus() -> LearnerStatus {
        let now = nowMs
        let counts = ledger.counts
        let pace = stepBoard.secondsPerStep
        let last = stepBoard.last
        let lastTokens = last.map { r in r.totalSeconds > 0 ? Double(r.metrics.trainedTokens) / r.totalSeconds : 0 }
        return LearnerStatus(
            runId: options.runId, completedSteps: completedSteps, totalSteps: options.steps, weightVersion: version,
            secondsPerStep: pace, etaSeconds: pace.map { $0 * Double(max(0, options.steps - completedSteps)) },
            groupsAccepted: counts.accepted, groupsDuplicate: counts.duplicate, groupsStale: counts.stale,
            groupsRejected: counts.rejected, tasksReissued: counts.reissued, actorsDeclaredDead: counts.deadActors,
            malformedMessages: summary.malformed, tasksPending: ledger.pendingCount, tasksInFlight: ledger.inFlightCount,
            groupsWaiting: pipeline.groupsWaiting, weightBytesSent: actorBoard.bytesSent,
            residentBytes: SystemMemory.resident()?.current, rewardMean: last?.metrics.rewardMean,
            selfCertainty: last?.metrics.selfCertaintyMean, kl: last?.metrics.meanKL, loss: last?.metrics.loss,
            tokensPerSecond: lastTokens, evalAccuracy: stepBoard.lastEval?.accuracy,
            actors: actorBoard.rows(ids: ledger.actorIds, tasksHeld: { ledger.tasksHeld(by: $0) }, now: now))
    }

    /// The reply to a `StatusRequest` (any peer on the work socket; with CURVE only authorized keys get there).
    func statusReply() -> Message {
        let enc = MetricsLog.encoder()
        let json = (try? enc.encode(currentStatus())).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return .statusReply(StatusReply(statusJson: json))
    }

    /// Once a second: hands the status to `onStatus` (Prometheus).
    func publishStatusIfDue() {
        guard let onStatus, Date().timeIntervalSince(lastStatusPublished) >= 1 else { return }
        lastStatusPublished = Date()
        onStatus(currentStatus())
    }
}
