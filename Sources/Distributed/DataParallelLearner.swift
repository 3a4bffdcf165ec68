import Foundation
import Learner
import Logging
import Training
import Wire

/// The learner's compute on rank 0 of a data-parallel learner: before each step it broadcasts the step's groups
/// to the other ranks (`StepCommand`), then trains its own share (the trainer's `dataParallel` splits each
/// minibatch by tokens and sums gradients with MPI_Allreduce), and every `checkEvery` steps compares a weight hash
/// with every rank. Snapshots and checkpoints are rank 0's alone (all ranks hold the same weights).
public final class DataParallelCompute: LearnerCompute {
    public let inner: GRPOLearnerCompute
    public let world: MPIWorld
    public let checks: WeightCheckSchedule

    public init(inner: GRPOLearnerCompute, world: MPIWorld, checks: WeightCheckSchedule) {
        self.inner = inner
        self.world = world
        self.checks = checks
        inner.trainer.dataParallel = world
    }

    public var modelConfigJSON: String { inner.modelConfigJSON }
    public var vocabSize: Int { inner.vocabSize }

    public func snapshot(version: UInt64, dtype: DType, chunkBytes: Int) throws -> WeightSnapshot {
        try inner.snapshot(version: version, dtype: dtype, chunkBytes: chunkBytes)
    }

    // Every rank holds the same adapters and base: rank 0's serve the actors.
    public var adapterLayout: AdapterLayout? { inner.adapterLayout }
    public func adapterWeights(version: UInt64) -> AdapterWeights { inner.adapterWeights(version: version) }
    public func mergedSnapshot(_ adapters: AdapterWeights, dtype: DType, chunkBytes: Int) throws -> WeightSnapshot {
        try inner.mergedSnapshot(adapters, dtype: dtype, chunkBytes: chunkBytes)
    }
    public func frozenBaseSnapshot(dtype: DType, chunkBytes: Int) throws -> WeightSnapshot {
        try inner.frozenBaseSnapshot(dtype: dtype, chunkBytes: chunkBytes)
    }

    public func train(step: Int, groups: [AcceptedGroup]) throws -> StepResult {
        _ = try world.broadcast(StepCommand.train(step: step, groups: groups).encoded())
        var m = try inner.train(step: step, groups: groups)
        if checks.due(afterStep: step) { try checkWeights(world, inner.trainer, completedSteps: step + 1) }
        m.record.updateLearnerStats { $0.learnerRanks = world.size }
        return m
    }

    public func checkpoint(completedSteps: Int, cursor: DataCursor) throws {
        try inner.checkpoint(completedSteps: completedSteps, cursor: cursor)
    }

    /// Every rank re-scores and checks the same groups (`verify_rewards` samples by task id and the re-scored values
    /// are shared), so every rank drops the same ones; rank 0's list is the one the network thread acts on.
    public func takeFlaggedGroups() -> [FlaggedGroup] { inner.takeFlaggedGroups() }

    /// Tells the other ranks the run is over (after the last step, or after a stop).
    public func finish() throws { _ = try world.broadcast(StepCommand.finish.encoded()) }
}

/// When ranks compare weight hashes: before the first step (a rank that loaded other weights stops at once),
/// after every `every` steps, and after the last step.
public struct WeightCheckSchedule: Sendable {
    public var every: Int
    public var steps: Int
    public init(every: Int, steps: Int) { self.every = every; self.steps = steps }
    /// After 0-based `step`.
    public func due(afterStep step: Int) -> Bool { (every > 0 && (step + 1) % every == 0) || step + 1 == steps }
}

/// Every rank's weight hash against rank 0's (one MPI_Allgather of a u64); throws naming the ranks that differ.
public func checkWeights(_ world: MPIWorld, _ trainer: GRPOTrainer, completedSteps: Int) throws {
    let hashes = try world.allgather(WeightHash.of(trainer.policy))
    if let e = WeightHash.mismatch(hashes, afterSteps: completedSteps) { throw e }
}

/// Ranks 1..<N of a data-parallel learner: no sockets, no files; each step's groups come from rank 0, the rank
/// trains its share and joins the reductions, until rank 0 says finish.
public struct DataParallelWorker {
    public let world: MPIWorld
    public let compute: GRPOLearnerCompute
    public let checks: WeightCheckSchedule
    let log: Logger

    public init(world: MPIWorld, compute: GRPOLearnerCompute, checks: WeightCheckSchedule, logger: Logger) {
        self.world = world
        self.compute = compute
        self.checks = checks
        log = logger
        compute.trainer.dataParallel = world
    }

    /// Returns the number of steps trained here.
    public func run() throws -> Int {
        var trained = 0
        while true {
            switch try StepCommand(decoding: world.broadcast([], root: 0)) {
            case .finish:
                return trained
            case let .train(step, groups):
                let m = try compute.train(step: step, groups: groups)
                if checks.due(afterStep: step) { try checkWeights(world, compute.trainer, completedSteps: step + 1) }
                trained += 1
                log.debug("rank \(world.rank): step \(step + 1) trained (\(m.record.metrics.trainedTokens) tokens over all ranks)")
            }
        }
    }
}
