/// Decides whether an optimizer step may be applied, from the step's loss and pre-clip gradient norm, and counts
/// refusals. A refused step must leave parameters and optimizer state untouched (don't call `AdamW.step`).
public struct UpdateGuard: Sendable, Equatable {
    /// Why a step was refused.
    public enum Reason: Sendable, Equatable, CustomStringConvertible {
        case nonFiniteLoss(Double)
        case nonFiniteGradNorm(Double)
        case gradNormTooLarge(norm: Double, limit: Double)
        public var description: String {
            switch self {
            case let .nonFiniteLoss(l): return "loss is \(l)"
            case let .nonFiniteGradNorm(g): return "gradient norm is \(g) (a NaN/Inf gradient)"
            case let .gradNormTooLarge(g, lim): return "gradient norm \(g) exceeds the refusal limit \(lim)"
            }
        }
    }

    public enum Decision: Sendable, Equatable {
        case apply
        case refuse(Reason)
        public var shouldApply: Bool { self == .apply }
    }

    /// Optional: also refuse finite steps whose pre-clip norm exceeds this (a loss spike); nil = only non-finite.
    public var refuseGradNormAbove: Double?
    public private(set) var accepted = 0
    public private(set) var refused = 0
    /// Refusals since the last accepted step (a learner may abort when this grows).
    public private(set) var consecutiveRefusals = 0
    public private(set) var lastReason: Reason?

    public init(refuseGradNormAbove: Double? = nil) { self.refuseGradNormAbove = refuseGradNormAbove }

    /// Records and returns the decision for one step.
    public mutating func check(loss: Double, gradNorm: Double) -> Decision {
        var reason: Reason?
        if !loss.isFinite { reason = .nonFiniteLoss(loss) }
        else if !gradNorm.isFinite { reason = .nonFiniteGradNorm(gradNorm) }
        else if let lim = refuseGradNormAbove, gradNorm > lim { reason = .gradNormTooLarge(norm: gradNorm, limit: lim) }
        if let r = reason {
            refused += 1; consecutiveRefusals += 1; lastReason = r
            return .refuse(r)
        }
        accepted += 1; consecutiveRefusals = 0
        return .apply
    }
}
