import Foundation
import Wire

/// Hand-off between the actor's network thread and its worker thread. All fields are guarded by `cond`'s lock;
/// the class is @unchecked Sendable because every access goes through `withLock`/`wait`.
final class ActorMailbox: @unchecked Sendable {
    enum Output {
        /// `generation`: the value passed to `enqueue` with the task (the learner incarnation it came from).
        case group(RolloutGroup, generation: Int)
        case failed(taskId: UInt64, error: String, generation: Int)
        case installed(version: UInt64, kind: SnapshotKind)
        case installFailed(version: UInt64, kind: SnapshotKind, error: String)
        case configured
        case configureFailed(String)
    }

    private let cond = NSCondition()
    private var items: [(item: WorkItem, generation: Int)] = []
    /// Prompt ids whose sampling fails on purpose (`RLIF_DEBUG_FAIL_PROMPTS`, a fault hook for tests and
    /// scripts/chaos): the worker raises `InjectedFault` for them instead of sampling.
    var failPromptIds: Set<String> = []
    /// The newest full or adapter snapshot handed over, and the frozen base (kept apart: an adapter version
    /// assembled while the base still waits must not replace it).
    private var snapshot: AssembledSnapshot?
    private var base: AssembledSnapshot?
    private var config: (json: String, adapters: AdapterSpec?)?
    private var outputs: [Output] = []
    private var stopping = false
    private(set) var busyTask: UInt64?

    func withLock<R>(_ body: () -> R) -> R { cond.lock(); defer { cond.unlock() }; return body() }

    // Network thread → worker.
    func enqueue(_ item: WorkItem, generation: Int) { withLock { items.append((item, generation)) }; cond.broadcast() }
    /// Drops the queued tasks (the learner that issued them restarted); returns their ids. A task being sampled
    /// finishes and comes out with its old generation.
    func dropQueued() -> [UInt64] { withLock { let ids = items.map(\.item.taskId); items.removeAll(); return ids } }
    func install(_ s: AssembledSnapshot) {
        withLock { if s.kind == .frozenBase { base = s } else { snapshot = s } }
        cond.broadcast()
    }
    func configure(_ json: String, adapters: AdapterSpec?) { withLock { config = (json, adapters) }; cond.broadcast() }
    func stop() { withLock { stopping = true }; cond.broadcast() }

    /// Task ids queued or being sampled.
    /// Tasks queued, being sampled, or answered but not yet drained by the network thread.
    var tasksInProgress: [UInt64] {
        withLock {
            var ids = items.map(\.item.taskId) + (busyTask.map { [$0] } ?? [])
            for case .group(let g, _) in outputs { ids.append(g.taskId) }
            return ids
        }
    }
    var isIdle: Bool { withLock { items.isEmpty && busyTask == nil && snapshot == nil && base == nil && config == nil } }

    // Worker → network thread.
    func drainOutputs() -> [Output] { withLock { let o = outputs; outputs.removeAll(); return o } }

    /// Worker loop: configuration first, then the frozen base, then weights (full or adapters), then work, so a
    /// group is never sampled with weights older than the newest snapshot the network thread has handed over, and
    /// adapters never run on a base older than the one handed over before them.
    func runWorker(_ engine: RolloutEngine, actorId: String, version: @escaping @Sendable () -> UInt64) {
        while true {
            cond.lock()
            while !stopping && config == nil && base == nil && snapshot == nil && items.isEmpty { cond.wait() }
            if stopping { cond.unlock(); return }
            if let c = config {
                config = nil
                cond.unlock()
                let out: Output
                do { try engine.configure(modelConfigJSON: c.json, adapters: c.adapters); out = .configured } catch {
                    out = .configureFailed("\(error)")
                }
                withLock { outputs.append(out) }
                continue
            }
            if let s = base ?? snapshot {
                if s.kind == .frozenBase { base = nil } else { snapshot = nil }
                cond.unlock()
                let out: Output
                do { try engine.install(s); out = .installed(version: s.version, kind: s.kind) } catch {
                    out = .installFailed(version: s.version, kind: s.kind, error: "\(error)")
                }
                withLock { outputs.append(out) }
                continue
            }
            let (item, generation) = items.removeFirst()
            busyTask = item.taskId
            let fail = failPromptIds.contains(item.promptId)
            cond.unlock()
            let v = version()
            let out: Output
            do {
                if fail { throw InjectedFault(promptId: item.promptId) }
                let (completions, timings) = try engine.sample(item)
                out = .group(RolloutGroup(taskId: item.taskId, actorId: actorId, weightVersion: v,
                                          promptId: item.promptId, completions: completions, timings: timings),
                             generation: generation)
            } catch {
                out = .failed(taskId: item.taskId, error: "\(error)", generation: generation)
            }
            withLock { outputs.append(out); busyTask = nil }
        }
    }
}

/// The failure `RLIF_DEBUG_FAIL_PROMPTS` injects (a debug fault hook, not a model error).
struct InjectedFault: Error, CustomStringConvertible {
    var promptId: String
    var description: String { "injected fault: RLIF_DEBUG_FAIL_PROMPTS names prompt \(promptId)" }
}
