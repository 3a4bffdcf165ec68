import Testing
@testable import Scheduling

/// "A learner with work outstanding and nothing arriving says so every N seconds" (issue 15), as pure logic.
@Suite struct StallWatchTests {
    @Test func reportsEveryIntervalOfSilenceWhileWaitingOnly() {
        var w = StallWatch(intervalMs: 1000, now: 0)
        #expect(w.check(now: 999, waiting: true) == nil)
        #expect(w.check(now: 1000, waiting: true) == 1000)
        #expect(w.check(now: 1500, waiting: true) == nil, "once per interval")
        #expect(w.check(now: 2000, waiting: true) == 2000, "the silence keeps counting from the last progress")
        w.progress(now: 2100)
        #expect(w.check(now: 3000, waiting: true) == nil)
        #expect(w.check(now: 3100, waiting: true) == 1000)
        // Not waiting (training, or nothing outstanding): silence is not a stall and does not accumulate.
        #expect(w.check(now: 9000, waiting: false) == nil)
        #expect(w.check(now: 9500, waiting: true) == nil)
        #expect(w.check(now: 10_000, waiting: true) == 1000)
    }
}
