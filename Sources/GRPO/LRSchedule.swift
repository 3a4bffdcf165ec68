import Foundation

/// Learning-rate schedules with linear warmup, numerically identical to `transformers.optimization`
/// (`get_constant_schedule_with_warmup`, `get_linear_schedule_with_warmup`, `get_cosine_schedule_with_warmup`,
/// `get_cosine_with_min_lr_schedule_with_warmup`).
///
/// Step numbering is torch LambdaLR's: `lr(step: k)` is the rate used by the optimizer step taken after k earlier
/// steps (k = 0 for the first update; the HF Trainer calls `optimizer.step()` then `scheduler.step()`). With
/// warmup W > 0 the first update therefore runs at lr 0, exactly as in transformers.
///
///     k < W:     λ = k / max(1, W)
///     constant:  λ = 1
///     linear:    λ = max(0, (T − k) / max(1, T − W))
///     cosine:    p = (k − W) / max(1, T − W);  λ = max(0, (0.5·(1 + cos(π·2·cycles·p)))·(1 − minRatio) + minRatio)
///
/// and lr = baseLR · λ. T = `totalSteps`; W = `warmupSteps`, which `init(warmupRatio:)` sets to
/// ⌈T · ratio⌉ like `TrainingArguments.get_warmup_steps`.
public struct LRSchedule: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case constant
        case linear
        /// `numCycles` 0.5 = half a cosine from 1 down to `minLRRatio` (transformers' default).
        case cosine(numCycles: Double = 0.5, minLRRatio: Double = 0)
    }

    public var kind: Kind
    public var baseLR: Double
    public var totalSteps: Int
    public var warmupSteps: Int

    public init(kind: Kind, baseLR: Double, totalSteps: Int, warmupSteps: Int) throws {
        guard totalSteps >= 0 else {
            throw GRPOError.invalidValue(argument: "totalSteps", value: Double(totalSteps), why: "must be >= 0")
        }
        guard warmupSteps >= 0 else {
            throw GRPOError.invalidValue(argument: "warmupSteps", value: Double(warmupSteps), why: "must be >= 0")
        }
        guard baseLR >= 0, baseLR.isFinite else {
            throw GRPOError.invalidValue(argument: "baseLR", value: baseLR, why: "must be finite and >= 0")
        }
        if case let .cosine(cycles, minRatio) = kind {
            guard cycles.isFinite, cycles > 0 else {
                throw GRPOError.invalidValue(argument: "numCycles", value: cycles, why: "must be finite and > 0")
            }
            guard minRatio >= 0, minRatio <= 1 else {
                throw GRPOError.invalidValue(argument: "minLRRatio", value: minRatio, why: "must be in [0, 1]")
            }
        }
        self.kind = kind; self.baseLR = baseLR; self.totalSteps = totalSteps; self.warmupSteps = warmupSteps
    }

    /// Warmup as a fraction of `totalSteps` (default 0.1): W = ⌈T · ratio⌉ (Double arithmetic, as in Python).
    public init(kind: Kind = .cosine(), baseLR: Double, totalSteps: Int, warmupRatio: Double = 0.1) throws {
        guard warmupRatio >= 0, warmupRatio <= 1 else {
            throw GRPOError.invalidValue(argument: "warmupRatio", value: warmupRatio, why: "must be in [0, 1]")
        }
        try self.init(kind: kind, baseLR: baseLR, totalSteps: totalSteps,
                      warmupSteps: Int((Double(totalSteps) * warmupRatio).rounded(.up)))
    }

    /// The LambdaLR multiplier λ(k).
    public func multiplier(step k: Int) -> Double {
        let w = warmupSteps, t = totalSteps
        if k < w { return Double(k) / Double(max(1, w)) }
        switch kind {
        case .constant:
            return 1
        case .linear:
            return max(0, Double(t - k) / Double(max(1, t - w)))
        case let .cosine(cycles, minRatio):
            let progress = Double(k - w) / Double(max(1, t - w))
            var factor = 0.5 * (1 + cos(Double.pi * cycles * 2 * progress))
            factor = factor * (1 - minRatio) + minRatio
            return max(0, factor)
        }
    }

    /// baseLR · λ(k): the learning rate for the optimizer step after k earlier steps.
    public func lr(step k: Int) -> Double { baseLR * multiplier(step: k) }
}
