import Foundation
import Kernels
import Synchronization
import Testing

/// `Parallel.run` on the persistent helper pool: every worker index runs exactly once per call, also when many
/// threads call at once (the pool takes one job, the others fall back) and when a worker itself calls run.
@Suite struct ParallelTests {
    @Test func everyWorkerRunsOncePerCall() {
        for workers in [1, 2, 3, 8] {
            for _ in 0..<200 {
                let counts = Mutex([Int](repeating: 0, count: workers))
                Parallel.run(workers: workers) { i in counts.withLock { $0[i] += 1 } }
                let seen = counts.withLock { $0 }
                if seen != [Int](repeating: 1, count: workers) {
                    Issue.record("workers=\(workers): runs per worker \(seen)"); return
                }
            }
        }
    }

    @Test func concurrentAndNestedCallers() {
        let total = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 6) { _ in
            for _ in 0..<300 {
                Parallel.run(workers: 2) { _ in
                    Parallel.run(workers: 2) { _ in total.add(1, ordering: .relaxed) }
                }
            }
        }
        #expect(total.load(ordering: .relaxed) == 6 * 300 * 2 * 2)
    }

    /// The pool's helpers sleep after a while and must wake for the next job.
    @Test func wakesAfterIdle() {
        let ran = Atomic<Int>(0)
        for _ in 0..<3 {
            Thread.sleep(forTimeInterval: 0.01)   // > the helpers' spin window
            Parallel.run(workers: 2) { _ in ran.add(1, ordering: .relaxed) }
        }
        #expect(ran.load(ordering: .relaxed) == 6)
    }
}
