/// How per-token losses ℓ_t (already multiplied by the token mask m_t) become one scalar. Names follow verl's
/// `loss_agg_mode` (`verl/trainer/ppo/core_algos.py: agg_loss`); S = number of sequences, n_s = Σ_{t∈s} m_t.
public enum LossAggregation: Sendable, Equatable {
    /// verl "token-mean" (DAPO; the default): Σ_s Σ_t m_t ℓ_t / D, D = Σ_s n_s (all tokens of all sequences).
    case tokenMean
    /// verl "seq-mean-token-mean" (original GRPO): Σ_s [ (Σ_t m_t ℓ_t) / n_s ] / D, D = S.
    /// A sequence with n_s = 0 contributes 0 (verl would produce 0/0 = NaN) but still counts in S.
    case seqMeanTokenMean
    /// verl "seq-mean-token-sum": Σ_s Σ_t m_t ℓ_t / D, D = S.
    case seqMeanTokenSum
    /// Σ_s Σ_t m_t ℓ_t / D with a fixed D (> 0). Dr.GRPO as in TRL `loss_type="dr_grpo"`: D = S · maxCompletionLength
    /// (verl's "seq-mean-token-sum-norm" is D = maxCompletionLength alone).
    case constantNormalizer(Double)

    /// The denominator D for a whole minibatch, to pass as `policyLoss(normalizer:)` to each of its micro-batches:
    /// Σ m_t over the minibatch (tokenMean), its number of sequences (seq modes), or the constant.
    public func normalizer(totalTokenWeight: Double, sequenceCount: Int) -> Double {
        switch self {
        case .tokenMean: return totalTokenWeight
        case .seqMeanTokenMean, .seqMeanTokenSum: return Double(sequenceCount)
        case let .constantNormalizer(c): return c
        }
    }
}

/// Hyper-parameters of `policyLoss`. Defaults are verl/TRL defaults, except that dual-clip is off.
public struct PolicyLossConfig: Sendable, Equatable {
    /// ε_low: the ratio is clipped below at 1 − ε_low (verl `clip_ratio_low`, TRL `epsilon`).
    public var clipLow: Double = 0.2
    /// ε_high: the ratio is clipped above at 1 + ε_high (verl `clip_ratio_high`, TRL `epsilon_high`; DAPO uses 0.28).
    public var clipHigh: Double = 0.2
    /// Dual-clip constant c (> 1) for tokens with A < 0 (verl `clip_ratio_c`, usually 3.0); nil = off.
    public var dualClip: Double? = nil
    /// β, the k3 KL-to-reference coefficient (verl `kl_loss_coef`, TRL `beta`). 0 → no reference needed.
    public var klCoef: Double = 0.005
    /// Cap C of the truncated importance-sampling weight; used only when `rolloutLogp` is passed (TRL
    /// `vllm_importance_sampling_cap` = 2, verl `tis_imp_ratio_cap`).
    public var tisCap: Double = 2.0
    /// The PPO log-ratio logp − oldLogp is clamped to ±this before exp (verl: ±20, "for numerical stability").
    public var ratioLogClamp: Double = 20
    /// verl low_var_kl clamps of the k3 estimator: log-ratio ref − logp to ±`klLogRatioClamp` (20) before exp,
    /// and the estimate itself to ±`klValueClamp` (10).
    public var klLogRatioClamp: Double = 20
    public var klValueClamp: Double = 10
    /// How per-token losses are reduced (see `LossAggregation`).
    public var aggregation: LossAggregation = .tokenMean

    public init(clipLow: Double = 0.2, clipHigh: Double = 0.2, dualClip: Double? = nil, klCoef: Double = 0.005,
                tisCap: Double = 2.0, aggregation: LossAggregation = .tokenMean) {
        self.clipLow = clipLow; self.clipHigh = clipHigh; self.dualClip = dualClip
        self.klCoef = klCoef; self.tisCap = tisCap; self.aggregation = aggregation
    }

    func validate() throws {
        func check(_ name: String, _ v: Double, _ ok: Bool, _ why: String) throws {
            if !ok || !v.isFinite { throw GRPOError.invalidValue(argument: "PolicyLossConfig.\(name)", value: v, why: why) }
        }
        try check("clipLow", clipLow, clipLow >= 0 && clipLow < 1, "must be in [0, 1)")
        try check("clipHigh", clipHigh, clipHigh >= 0, "must be >= 0")
        if let c = dualClip { try check("dualClip", c, c > 1, "must be > 1 (verl asserts clip_ratio_c > 1)") }
        try check("klCoef", klCoef, klCoef >= 0, "must be >= 0")
        try check("tisCap", tisCap, tisCap > 0, "must be > 0")
        try check("ratioLogClamp", ratioLogClamp, ratioLogClamp > 0, "must be > 0")
        try check("klLogRatioClamp", klLogRatioClamp, klLogRatioClamp > 0, "must be > 0")
        try check("klValueClamp", klValueClamp, klValueClamp > 0, "must be > 0")
        if case let .constantNormalizer(d) = aggregation {
            try check("aggregation.constantNormalizer", d, d > 0, "must be > 0")
        }
    }
}

/// Diagnostics of one `policyLoss` call as mask-weighted sums, so micro-batches can be `merge`d and the means
/// taken over the whole minibatch. All means are over tokens weighted by m_t (verl `masked_mean`).
public struct PolicyLossStats: Sendable, Equatable {
    /// Σ m_t over all tokens of all sequences.
    public var tokenWeight: Double = 0
    /// Number of sequences S (sum these for the seq-mean normalisers across micro-batches).
    public var sequenceCount: Int = 0
    /// Σ m_t·[ratio < 1−ε_low ∧ A < 0]  (TRL `clip_ratio/low`; clipped tokens whose gradient is zeroed).
    public var clippedLowSum: Double = 0
    /// Σ m_t·[ratio > 1+ε_high ∧ A > 0] (TRL `clip_ratio/high`).
    public var clippedHighSum: Double = 0
    /// Σ m_t·[dual clip active] (verl `pg_clipfrac_lower`).
    public var dualClippedSum: Double = 0
    /// Σ m_t·ratio.
    public var ratioSum: Double = 0
    /// Σ m_t·(oldLogp − logp): verl `ppo_kl` (k1 estimate of KL(old‖new)).
    public var approxKLSum: Double = 0
    /// Σ m_t·kl3_t (k3 KL to the reference, after the clamps); 0 when β = 0 and no reference is given.
    public var klSum: Double = 0
    /// Σ m_t·w_t of the truncated IS weights (m_t when TIS is off), and Σ m_t·[w_t was capped].
    public var tisWeightSum: Double = 0
    public var tisCappedSum: Double = 0

    public init() {}

    /// verl `pg_clipfrac`: fraction of tokens where the clipped branch was taken (low + high).
    public var clipFraction: Double { fraction(clippedLowSum + clippedHighSum) }
    public var clipFractionLow: Double { fraction(clippedLowSum) }
    public var clipFractionHigh: Double { fraction(clippedHighSum) }
    public var dualClipFraction: Double { fraction(dualClippedSum) }
    public var meanRatio: Double { fraction(ratioSum) }
    /// verl `ppo_kl` = masked_mean(oldLogp − logp).
    public var approxKL: Double { fraction(approxKLSum) }
    /// masked mean of the k3 reference KL (verl `actor/kl_loss` under token-mean).
    public var meanKL: Double { fraction(klSum) }
    public var meanTISWeight: Double { fraction(tisWeightSum) }
    public var tisCappedFraction: Double { fraction(tisCappedSum) }

    private func fraction(_ x: Double) -> Double { tokenWeight > 0 ? x / tokenWeight : 0 }

    /// Adds another micro-batch's sums.
    public mutating func merge(_ o: PolicyLossStats) {
        tokenWeight += o.tokenWeight; sequenceCount += o.sequenceCount
        clippedLowSum += o.clippedLowSum; clippedHighSum += o.clippedHighSum; dualClippedSum += o.dualClippedSum
        ratioSum += o.ratioSum; approxKLSum += o.approxKLSum; klSum += o.klSum
        tisWeightSum += o.tisWeightSum; tisCappedSum += o.tisCappedSum
    }
}

/// Output of `policyLoss`.
public struct PolicyLossResult<T: GRPOScalar>: Sendable {
    /// The aggregated objective L = L_pg + β·L_kl (what the gradient is of).
    public var loss: Double
    /// Aggregated PPO-clip surrogate (with TIS weights), and aggregated k3 KL (without β).
    public var pgLoss: Double
    public var klLoss: Double
    /// dL/dlogp_t, one per flat token (N,); 0 for tokens outside every sequence or with m_t = 0.
    /// (Empty when the caller supplied its own accumulation buffer.)
    public var dLogp: [T]
    /// The denominator D that was used (after any `normalizer` override).
    public var normalizer: Double
    public var stats: PolicyLossStats

    public var clipFraction: Double { stats.clipFraction }
    public var approxKL: Double { stats.approxKL }
    public var meanKL: Double { stats.meanKL }
    public var meanRatio: Double { stats.meanRatio }
}

/// GRPO / PPO-clip policy loss on flat per-token arrays, with its analytic gradient dL/dlogp.
///
/// Tokens live in flat arrays of N entries; sequence s is `offsets[s] ..< offsets[s] + lengths[s]` (variable
/// lengths, any order, unused gaps allowed). Per token t of sequence s, with advantage A (per sequence or per
/// token), mask m_t (default 1):
///
///     ρ_t   = exp(clamp(logp_t − old_t, ±20))                                 PPO ratio (verl)
///     pg_t  = max(−A·ρ_t, −A·clip(ρ_t, 1−ε_low, 1+ε_high))                    PPO-clip surrogate
///     pg_t  = min(pg_t, −A·c)                     only if A < 0 and dual-clip c is set (verl compute_policy_loss)
///     w_t   = min(exp(old_t − rollout_t), C)      truncated IS, only when rolloutLogp is given; else w_t = 1
///     x_t   = clamp(ref_t − logp_t, ±20)
///     kl_t  = clamp(exp(x_t) − x_t − 1, ±10)                                  k3 / verl "low_var_kl"
///     ℓ_t   = w_t·pg_t + β·kl_t
///     L     = Σ_s κ_s Σ_t m_t·ℓ_t                 κ_s = 1/D, or 1/(n_s·D) for seqMeanTokenMean (see LossAggregation)
///
/// This is verl's `compute_policy_loss_vanilla` + `kl_penalty(low_var_kl)` + `agg_loss`, with the KL added to the
/// loss (`use_kl_loss`), and TRL GRPOTrainer's `_compute_loss` (same per-token form; TRL's KL is unclamped). TIS
/// multiplies only the policy-gradient term, as in both (verl `rollout_is_weights`/`tis_imp_ratio`, TRL
/// `importance_sampling_ratio`): `old` is the trainer's own recomputation of the behaviour policy, `rollout` the
/// sampler's (actor) log-probs; w_t corrects the sampler/trainer mismatch and is a constant (no gradient).
///
/// Gradient (torch autograd semantics, clamps pass zero gradient outside their range):
///
///     dpg_t/dlogp = −A·ρ_t   when the unclipped branch is selected (and the ±20 clamp inactive), else 0
///     dkl_t/dlogp = 1 − exp(x_t)   (0 when either KL clamp is active)
///     dL/dlogp_t  = κ_s·m_t·(w_t·dpg_t + β·dkl_t)
///
/// - `oldLogp` nil: on-policy (one update per rollout): old = logp detached, so ρ = 1 (TRL's shortcut).
/// - `refLogp` may be nil only when β = 0.
/// - `normalizer`: replaces D. For gradient accumulation pass the whole minibatch's D (total Σ m_t for
///   tokenMean, total sequence count for the seq modes); then the micro-batch losses and gradients sum exactly to
///   the minibatch ones. It also overrides the constant of `constantNormalizer`.
/// - D = 0 (e.g. all masks 0 under tokenMean) gives loss 0 and zero gradients rather than NaN.
///
/// Non-finite inputs are not rejected: they propagate to `loss` so `UpdateGuard` refuses the step.
public func policyLoss(
    logp: [Float],                  // (N,) new-policy log-prob of each sampled token
    oldLogp: [Float]?,              // (N,) behaviour policy log-probs, nil = on-policy
    refLogp: [Float]? = nil,        // (N,) reference policy log-probs (needed when β > 0)
    rolloutLogp: [Float]? = nil,    // (N,) sampler log-probs → truncated IS weights
    advantages: [Float],            // (S,) per sequence, or (N,) if advantagesPerToken
    advantagesPerToken: Bool = false,
    offsets: [Int],                 // (S,)
    lengths: [Int],                 // (S,)
    mask: [Float]? = nil,           // (N,) m_t, nil = all 1
    config: PolicyLossConfig = PolicyLossConfig(),
    normalizer: Double? = nil
) throws -> PolicyLossResult<Float> {
    var d = [Float](repeating: 0, count: logp.count)
    var r = try d.withUnsafeMutableBufferPointer { buf in
        try policyLossCore(dLogp: buf, logp: logp, oldLogp: oldLogp, refLogp: refLogp, rolloutLogp: rolloutLogp,
                           advantages: advantages, advantagesPerToken: advantagesPerToken, offsets: offsets,
                           lengths: lengths, mask: mask, config: config, normalizer: normalizer)
    }
    r.dLogp = d
    return r
}

/// Same as the array version, but ACCUMULATES (+=) dL/dlogp into the caller's buffer `dLogp` (N,) — e.g. the
/// learner's gradient buffer — and returns an empty `dLogp` array.
public func policyLoss(
    accumulatingInto dLogp: UnsafeMutableBufferPointer<Float>,  // (N,)
    logp: [Float], oldLogp: [Float]?, refLogp: [Float]? = nil, rolloutLogp: [Float]? = nil,
    advantages: [Float], advantagesPerToken: Bool = false, offsets: [Int], lengths: [Int], mask: [Float]? = nil,
    config: PolicyLossConfig = PolicyLossConfig(), normalizer: Double? = nil
) throws -> PolicyLossResult<Float> {
    try policyLossCore(dLogp: dLogp, logp: logp, oldLogp: oldLogp, refLogp: refLogp, rolloutLogp: rolloutLogp,
                       advantages: advantages, advantagesPerToken: advantagesPerToken, offsets: offsets,
                       lengths: lengths, mask: mask, config: config, normalizer: normalizer)
}

/// Double-precision `policyLoss` (identical formulas), for finite-difference tests and reference checks.
public func policyLoss(
    logp: [Double], oldLogp: [Double]?, refLogp: [Double]? = nil, rolloutLogp: [Double]? = nil,
    advantages: [Double], advantagesPerToken: Bool = false, offsets: [Int], lengths: [Int], mask: [Double]? = nil,
    config: PolicyLossConfig = PolicyLossConfig(), normalizer: Double? = nil
) throws -> PolicyLossResult<Double> {
    var d = [Double](repeating: 0, count: logp.count)
    var r = try d.withUnsafeMutableBufferPointer { buf in
        try policyLossCore(dLogp: buf, logp: logp, oldLogp: oldLogp, refLogp: refLogp, rolloutLogp: rolloutLogp,
                           advantages: advantages, advantagesPerToken: advantagesPerToken, offsets: offsets,
                           lengths: lengths, mask: mask, config: config, normalizer: normalizer)
    }
    r.dLogp = d
    return r
}

/// The one implementation behind the public entry points (specialised for Float and Double in this module).
/// Accumulates into `dLogp`; the result's `dLogp` is empty.
func policyLossCore<T: GRPOScalar>(
    dLogp: UnsafeMutableBufferPointer<T>,   // (N,) accumulated
    logp: [T], oldLogp: [T]?, refLogp: [T]?, rolloutLogp: [T]?,
    advantages: [T], advantagesPerToken: Bool, offsets: [Int], lengths: [Int], mask: [T]?,
    config: PolicyLossConfig, normalizer: Double?
) throws -> PolicyLossResult<T> {
    try config.validate()
    let n = logp.count
    let numSeqs = offsets.count
    func checkCount(_ name: String, _ c: Int, _ expected: Int, _ why: String) throws {
        if c != expected { throw GRPOError.countMismatch(argument: name, count: c, expected: expected, why: why) }
    }
    try checkCount("dLogp", dLogp.count, n, "one gradient per flat token")
    try checkCount("lengths", lengths.count, numSeqs, "one length per offset")
    if let a = oldLogp { try checkCount("oldLogp", a.count, n, "one per flat token, like logp") }
    if let a = refLogp { try checkCount("refLogp", a.count, n, "one per flat token, like logp") }
    if let a = rolloutLogp { try checkCount("rolloutLogp", a.count, n, "one per flat token, like logp") }
    if let a = mask { try checkCount("mask", a.count, n, "one per flat token, like logp") }
    try checkCount("advantages", advantages.count, advantagesPerToken ? n : numSeqs,
                   advantagesPerToken ? "advantagesPerToken: one per flat token" : "one per sequence")
    let beta = config.klCoef
    if beta > 0 && refLogp == nil {
        throw GRPOError.missingInput(argument: "refLogp", why: "klCoef β = \(beta) > 0 needs reference log-probs")
    }
    for s in 0..<numSeqs {
        let o = offsets[s], l = lengths[s]
        if o < 0 || l < 0 || o > n || l > n - o {
            throw GRPOError.sequenceOutOfRange(index: s, offset: o, length: l, tokenCount: n)
        }
    }
    if let nz = normalizer, !(nz > 0 && nz.isFinite) {
        throw GRPOError.invalidValue(argument: "normalizer", value: nz, why: "must be finite and > 0")
    }

    // Per-sequence masked token counts n_s and the local denominator D.
    var seqWeight = [Double](repeating: 0, count: numSeqs)
    var totalWeight = 0.0
    for s in 0..<numSeqs {
        var w = 0.0
        if let m = mask { for t in offsets[s]..<(offsets[s] + lengths[s]) { w += Double(m[t]) } } else { w = Double(lengths[s]) }
        seqWeight[s] = w; totalWeight += w
    }
    let D = normalizer ?? config.aggregation.normalizer(totalTokenWeight: totalWeight, sequenceCount: numSeqs)

    let lo = T(1 - config.clipLow), hi = T(1 + config.clipHigh)
    let ratioClamp = T(config.ratioLogClamp)
    let klX = T(config.klLogRatioClamp), klV = T(config.klValueClamp)
    let dual: T? = config.dualClip.map { T($0) }
    let cap = T(config.tisCap)
    let betaT = T(beta)
    let useKL = beta > 0 || refLogp != nil   // compute the KL metric whenever a reference is given

    var stats = PolicyLossStats()
    stats.tokenWeight = totalWeight
    stats.sequenceCount = numSeqs
    var pgTotal = 0.0, klTotal = 0.0

    for s in 0..<numSeqs {
        // κ_s: the factor of Σ_t m_t ℓ_t in L.
        var kappa: Double
        if D > 0 { kappa = 1 / D } else { kappa = 0 }
        if config.aggregation == .seqMeanTokenMean { kappa = seqWeight[s] > 0 ? kappa / seqWeight[s] : 0 }
        let kappaT = T(kappa)
        var pgSeq = 0.0, klSeq = 0.0
        for t in offsets[s]..<(offsets[s] + lengths[s]) {
            let m: T = mask?[t] ?? 1
            if m == 0 { continue }
            let md = Double(m)
            let a = advantagesPerToken ? advantages[t] : advantages[s]
            let lp = logp[t]
            let old = oldLogp?[t] ?? lp

            // PPO ratio with verl's ±20 log clamp.
            let logRatio = lp - old
            let clampedLR = min(max(logRatio, -ratioClamp), ratioClamp)
            let ratio = T.grpoExp(clampedLR)
            let dRatio: T = (logRatio >= -ratioClamp && logRatio <= ratioClamp) ? ratio : 0
            let loss1 = -a * ratio
            let clippedRatio = min(max(ratio, lo), hi)
            let loss2 = -a * clippedRatio
            var pg: T, dpg: T
            if loss2 > loss1 {
                // Clipped branch selected: ratio is outside [lo, hi] here, so clip() passes no gradient.
                pg = loss2; dpg = 0
                if a < 0 { stats.clippedLowSum += md } else { stats.clippedHighSum += md }
            } else {
                pg = loss1; dpg = -a * dRatio
            }
            if let c = dual, a < 0 {
                let loss3 = -a * c
                if pg > loss3 { pg = loss3; dpg = 0; stats.dualClippedSum += md }
            }
            // Truncated importance sampling weight (constant).
            var w: T = 1
            if let roll = rolloutLogp {
                let raw = T.grpoExp(old - roll[t])
                if raw > cap { w = cap; stats.tisCappedSum += md } else { w = raw }
                pg *= w; dpg *= w
            }
            stats.tisWeightSum += md * Double(w)
            stats.ratioSum += md * Double(ratio)
            stats.approxKLSum += md * Double(old - lp)

            var grad = dpg
            pgSeq += md * Double(pg)
            if useKL, let ref = refLogp {
                let x = ref[t] - lp
                let xc = min(max(x, -klX), klX)
                let ex = T.grpoExp(xc)
                let kraw = ex - xc - 1
                let kl = min(max(kraw, -klV), klV)
                let xActive = x >= -klX && x <= klX
                let vActive = kraw >= -klV && kraw <= klV
                let dkl: T = (xActive && vActive) ? 1 - ex : 0
                klSeq += md * Double(kl)
                stats.klSum += md * Double(kl)
                grad += betaT * dkl
            }
            dLogp[t] += kappaT * m * grad
        }
        pgTotal += kappa * pgSeq
        klTotal += kappa * klSeq
    }
    let klLoss = useKL ? klTotal : 0
    return PolicyLossResult(loss: pgTotal + beta * klLoss, pgLoss: pgTotal, klLoss: klLoss, dLogp: [],
                            normalizer: D, stats: stats)
}
