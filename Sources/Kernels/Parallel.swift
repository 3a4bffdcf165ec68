import Dispatch
import Foundation

/// Splitting row loops over the cores. Every kernel parallelises through here so the worker count and the
/// "is it worth it" threshold live in one place.
public enum Parallel {
    /// Upper bound on workers a kernel splits into (default: the active core count, 2 on the target machine).
    /// 1 disables threading. Set once at startup (not synchronised).
    nonisolated(unsafe) public static var maxWorkers: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Work (in rough "flop-equivalents") below which a kernel stays on the calling thread: ~100 µs at a few
    /// GFLOP/s. Dispatch costs ~5-20 µs, so smaller jobs lose from splitting.
    nonisolated(unsafe) public static var minWorkPerSplit: Int = 400_000

    /// Number of workers for a job of `work` flop-equivalents over `items` independent items.
    @inlinable
    public static func workers(work: Int, items: Int) -> Int {
        if maxWorkers <= 1 || items < 2 || work < minWorkPerSplit { return 1 }
        return min(maxWorkers, items)
    }

    /// Calls `body` on contiguous, disjoint sub-ranges of `0..<count` (one per worker, balanced by count).
    /// `work` is the total cost estimate; below `minWorkPerSplit` this runs `body(0..<count)` inline.
    @inlinable
    public static func forRanges(count: Int, work: Int, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let w = workers(work: work, items: count)
        if w == 1 { body(0..<count); return }
        run(workers: w) { i in
            let lo = count * i / w, hi = count * (i + 1) / w
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Runs `body(worker)` for worker in 0..<workers concurrently and waits for all.
    @inlinable
    public static func run(workers: Int, _ body: (Int) -> Void) {
        if workers <= 1 { body(0); return }
        withoutActuallyEscaping(body) { escaping in
            // Safe: concurrentPerform returns only after every iteration finished, so the closure (and the
            // buffers it captures) outlive all uses; callers guarantee workers write disjoint memory.
            let box = UncheckedSendable(escaping)
            DispatchQueue.concurrentPerform(iterations: workers) { i in box.value(i) }
        }
    }
}

/// Carries a non-Sendable value (raw pointers, closures over them) into `concurrentPerform`.
/// Only used where the spawning call blocks until all workers are done and writes are disjoint.
@usableFromInline
struct UncheckedSendable<T>: @unchecked Sendable {
    @usableFromInline let value: T
    @usableFromInline init(_ value: T) { self.value = value }
}
