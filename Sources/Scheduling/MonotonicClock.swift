import Shared

/// Milliseconds on the monotonic clock (`ContinuousClock`) since the clock was made: the one time base of the
/// learner's and actors' liveness and timeout logic (never the wall clock, which can jump). The pure state
/// machines (`TaskLedger`, `StepPipeline`'s callers, the actor's `WeightSync` and `LearnerLink`) take `now` in these
/// milliseconds, so tests replay any timing without sleeping.
public struct MonotonicClock: Sendable {
    private let epoch = ContinuousClock.now
    public init() {}
    public var nowMs: UInt64 {
        UInt64((ContinuousClock.now - epoch).wholeMilliseconds)
    }
}

/// "Work is outstanding and nothing arrives": a report every `intervalMs` of silence while waiting, so a stuck run
/// is never silent (issue 15: a resumed learner waited 120 s without a log line). Pure: `now` is given.
public struct StallWatch: Sendable, Equatable {
    public let intervalMs: UInt64
    private var lastProgress: UInt64
    private var lastReport: UInt64

    public init(intervalMs: UInt64, now: UInt64) {
        self.intervalMs = max(1, intervalMs)
        lastProgress = now
        lastReport = now
    }

    /// Something arrived (a group, a finished step).
    public mutating func progress(now: UInt64) {
        lastProgress = max(lastProgress, now)
        lastReport = lastProgress
    }

    /// Returns the milliseconds since the last progress when a report is due; nil otherwise. While not `waiting`
    /// (nothing outstanding, or busy training) silence is not counted.
    public mutating func check(now: UInt64, waiting: Bool) -> UInt64? {
        guard waiting else { progress(now: now); return nil }
        guard now >= lastReport, now - lastReport >= intervalMs else { return nil }
        lastReport = now
        return now - lastProgress
    }
}
