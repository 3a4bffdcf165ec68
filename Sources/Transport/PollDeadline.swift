import Shared

/// A deadline `timeoutMs` from now on the monotonic clock (nil = none), for the blocking calls that poll in a loop:
/// `pollTimeout` is `zmq_poll`'s argument for the time left (-1 = wait forever, else ≥ 0 ms), so a call retried after
/// EINTR (or after a frame that was not the one wanted) waits only for what remains.
struct PollDeadline {
    private let clock = ContinuousClock()
    private let end: ContinuousClock.Instant?

    init(timeoutMs: Int?) {
        let now = clock.now
        end = timeoutMs.map { now.advanced(by: .milliseconds($0)) }
    }

    var pollTimeout: Int {
        guard let end else { return -1 }
        return max(0, Int(clock.now.duration(to: end).wholeMilliseconds))
    }
}
