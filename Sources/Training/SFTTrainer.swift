import Foundation
import GRPO
import Kernels
import Model

/// One supervised example: the loss is on `response` tokens only (prompt tokens are context).
public struct SFTExample: Sendable, Hashable {
    public var prompt: [Int32]
    public var response: [Int32]
    public init(prompt: [Int32], response: [Int32]) { self.prompt = prompt; self.response = response }
}

/// Settings of `rlif sft`.
public struct SFTConfig: Sendable {
    public var epochs: Double = 1
    /// Sequences per optimizer step.
    public var batchSequences: Int = 32
    public var microBatchTokens: Int = 4096
    /// Recompute each layer inside the backward instead of keeping its activations (see TrainConfig).
    public var activationCheckpointing = false
    public var learningRate: Float = 1e-3
    public var warmupRatio: Float = 0.05
    public var weightDecay: Float = 0.01
    public var maxGradNorm: Float = 1.0
    public var seed: UInt64 = 0
    public init() {}
}

/// Next-token cross-entropy training (mean over response tokens of each optimizer batch) with the same AdamW,
/// schedule and guard as GRPO. Used to make or warm up a base model, e.g. the embedded default.
public final class SFTTrainer {
    public let model: Transformer
    public let config: SFTConfig
    public let optimizer: AdamW
    public let schedule: LRSchedule
    public let totalSteps: Int
    public private(set) var step = 0
    private var guardrail = UpdateGuard()

    public init(model: Transformer, config: SFTConfig, exampleCount: Int) throws {
        self.model = model
        self.config = config
        model.activationCheckpointing = config.activationCheckpointing
        totalSteps = max(1, Int((Double(exampleCount) * config.epochs / Double(config.batchSequences)).rounded(.up)))
        optimizer = try AdamW(parameterCount: model.layout.totalCount,
                              config: AdamWConfig(lr: Double(config.learningRate), weightDecay: Double(config.weightDecay)))
        schedule = try LRSchedule(kind: .cosine(), baseLR: Double(config.learningRate), totalSteps: totalSteps,
                                  warmupRatio: Double(config.warmupRatio))
    }

    /// One optimizer step on `batch`; returns (mean loss, grad norm, refused?).
    public func trainStep(_ batch: [SFTExample]) throws -> (loss: Double, gradNorm: Double, refused: Bool) {
        model.zeroGradients()
        let total = batch.reduce(0) { $0 + $1.response.count }
        guard total > 0 else { return (0, 0, false) }
        var lossSum = 0.0
        for range in microBatches(batch) {
            lossSum += try accumulate(Array(batch[range]), normalizer: Double(total))
        }
        let g = model.gradients
        let norm = clipGradNorm(g.pointer, count: g.count, maxNorm: config.maxGradNorm > 0 ? Double(config.maxGradNorm) : .infinity)
        let loss = lossSum / Double(total)
        let lr = schedule.lr(step: step)
        switch guardrail.check(loss: loss, gradNorm: norm) {
        case .apply:
            optimizer.step(params: model.parameters.pointer, grads: g.pointer, lr: lr)
            step += 1
            return (loss, norm, false)
        case .refuse:
            return (loss, norm, true)
        }
    }

    func microBatches(_ examples: [SFTExample]) -> [Range<Int>] {
        PackedCompletions.microBatches(tokenCounts: examples.map { $0.prompt.count + $0.response.count },
                                       budget: config.microBatchTokens)
    }

    /// Summed (not averaged) cross-entropy of a micro-batch; gradients scaled by 1/normalizer accumulate.
    /// Cross-entropy is −logp at T = 1 of the fused LM head (no (R, V) logits).
    func accumulate(_ micro: [SFTExample], normalizer: Double) throws -> Double {
        let packed = PackedCompletions(micro.map { ($0.prompt, $0.response) })
        let r = packed.targets.count
        if r == 0 { return 0 }
        let logp = try model.forwardHead(packed.batch, logitRows: packed.rows, targets: packed.targets,
                                         forBackward: true).logp
        // d(Σ CE / normalizer)/dlogp = −1/normalizer per row.
        try model.backwardHead(dLogp: [Float](repeating: -Float(1 / normalizer), count: r))
        return logp.reduce(0.0) { $0 - Double($1) }
    }

    /// Mean response-token loss of `examples` without training (held-out loss).
    public func evaluate(_ examples: [SFTExample]) throws -> Double {
        var sum = 0.0, n = 0
        for range in microBatches(examples) {
            let packed = PackedCompletions(examples[range].map { ($0.prompt, $0.response) })
            let r = packed.rows.count
            if r == 0 { continue }
            let logp = try model.forwardHead(packed.batch, logitRows: packed.rows, targets: packed.targets,
                                             forBackward: false).logp
            sum += logp.reduce(0.0) { $0 - Double($1) }
            n += r
        }
        return n > 0 ? sum / Double(n) : 0
    }
}
