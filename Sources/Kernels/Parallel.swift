import CKernelSupport
import Dispatch
import Foundation
import Synchronization

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
    /// The calling thread runs worker 0; the others run on `HelperPool`'s persistent, briefly spinning threads
    /// (a decode step has ~70 parallel regions of 0.1–1 ms each, and waking a sleeping Dispatch worker for each
    /// cost ~15% of the step). When the pool is taken (another thread's job, or a nested call) this falls back to
    /// `DispatchQueue.concurrentPerform`.
    @inlinable
    public static func run(workers: Int, _ body: (Int) -> Void) {
        if workers <= 1 { body(0); return }
        withoutActuallyEscaping(body) { escaping in
            // Safe: both paths return only after every worker finished, so the closure (and the buffers it
            // captures) outlive all uses; callers guarantee workers write disjoint memory.
            if HelperPool.shared.run(workers: workers, escaping) { return }
            let box = UncheckedSendable(escaping)
            DispatchQueue.concurrentPerform(iterations: workers) { i in box.value(i) }
        }
    }
}

/// Persistent helper threads for `Parallel.run`: helper h runs worker h of each job. After a job a helper polls
/// for the next one for `spinNanoseconds` (yielding the core to any other runnable thread between polls, so
/// OpenBLAS's own threads are not starved) and then sleeps on a condition variable until woken.
/// One job at a time: a caller that finds the pool busy gets `false` and uses another path.
@usableFromInline
final class HelperPool: @unchecked Sendable {
    @usableFromInline static let shared = HelperPool(helpers: max(0, ProcessInfo.processInfo.activeProcessorCount - 1))

    /// How long an idle helper keeps polling before it sleeps.
    static let spinNanoseconds: UInt64 = 200_000

    let helpers: Int
    private let busy = Atomic<Bool>(false)        // a job is being set up or running
    private let generation = Atomic<Int>(0)       // bumped once per job (publishes job/jobWorkers)
    private let pending = Atomic<Int>(0)          // helpers that have not finished the current job
    private let sleepers = Atomic<Int>(0)         // helpers inside the condition wait
    private let wake = NSCondition()
    // Written by the caller before bumping `generation` (sequentially consistent), read by helpers after
    // observing the new generation, cleared only after every helper acknowledged the job.
    private var job: ((Int) -> Void)?
    private var jobWorkers = 0

    init(helpers: Int) {
        self.helpers = helpers
        for h in 0..<helpers {
            let t = Thread { [unowned self] in self.helperLoop(index: h + 1) }
            t.name = "rlif-kernel-\(h + 1)"
            t.stackSize = 1 << 20
            t.start()
        }
    }

    /// Runs `body(0..<workers)`, worker 0 on the caller; false (nothing run) when the pool cannot take the job.
    @usableFromInline
    func run(workers: Int, _ body: @escaping (Int) -> Void) -> Bool {
        guard workers <= helpers + 1,
              busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        job = body
        jobWorkers = workers
        pending.store(helpers, ordering: .relaxed)
        generation.add(1, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            wake.lock(); wake.broadcast(); wake.unlock()
        }
        body(0)
        var polls = 0
        while pending.load(ordering: .acquiring) > 0 {
            polls += 1
            if polls & 63 == 0 { sched_yield() } else { rlif_cpu_relax() }
        }
        job = nil
        busy.store(false, ordering: .releasing)
        return true
    }

    private func helperLoop(index: Int) {
        var seen = 0
        while true {
            var g = generation.load(ordering: .acquiring)
            if g == seen {
                let deadline = DispatchTime.now().uptimeNanoseconds + Self.spinNanoseconds
                var polls = 0
                while g == seen {
                    polls += 1
                    if polls & 15 == 0 {
                        if DispatchTime.now().uptimeNanoseconds > deadline {
                            wake.lock()
                            sleepers.add(1, ordering: .sequentiallyConsistent)
                            while generation.load(ordering: .sequentiallyConsistent) == seen { wake.wait() }
                            sleepers.subtract(1, ordering: .sequentiallyConsistent)
                            wake.unlock()
                        } else {
                            sched_yield()
                        }
                    } else {
                        rlif_cpu_relax()
                    }
                    g = generation.load(ordering: .acquiring)
                }
            }
            seen = g
            if index < jobWorkers, let body = job { body(index) }
            pending.subtract(1, ordering: .releasing)
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
