/// Group-relative advantages (GRPO, DeepSeekMath §4.1.2; verl `compute_grpo_outcome_advantage`; TRL `GRPOTrainer`).
///
/// `rewards` holds `groupSize` rewards per prompt, groups concatenated: (numGroups · groupSize,). For each group
/// with mean μ and standard deviation σ:
///
///     A_i = (r_i − μ) / (σ + ε)     when scaleByStd (GRPO, verl `norm_adv_by_std_in_grpo=True`)
///     A_i =  r_i − μ                when !scaleByStd (Dr.GRPO, arXiv 2503.20783; TRL `scale_rewards="none"`)
///
/// σ is the unbiased (Bessel, n−1) standard deviation when `unbiasedStd` — what `torch.std` and therefore verl and
/// TRL use — else the population one (n). Means and deviations are accumulated in Double.
///
/// - A group whose rewards are all equal gets advantages of exactly 0 (σ = 0, numerator 0: no NaN).
/// - `groupSize == 1`: there is no group baseline; like verl (mean 0, std 1 for singleton groups) the result is
///   r / (1 + ε) (or r when !scaleByStd).
///
/// Returns one advantage per reward, same order. Throws when `groupSize <= 0`, the count is not a multiple of it,
/// a reward is non-finite, or ε < 0.
public func groupAdvantages(
    rewards: [Float],          // (numGroups · groupSize,)
    groupSize: Int,
    epsilon: Float = 1e-6,
    unbiasedStd: Bool = true,
    scaleByStd: Bool = true
) throws -> [Float] {
    guard groupSize > 0 else {
        throw GRPOError.invalidValue(argument: "groupSize", value: Double(groupSize), why: "must be > 0")
    }
    guard rewards.count % groupSize == 0 else {
        throw GRPOError.countMismatch(argument: "rewards", count: rewards.count,
                                      expected: (rewards.count / groupSize + 1) * groupSize,
                                      why: "must be a multiple of groupSize \(groupSize)")
    }
    guard epsilon >= 0, epsilon.isFinite else {
        throw GRPOError.invalidValue(argument: "epsilon", value: Double(epsilon), why: "must be finite and >= 0")
    }
    if let bad = rewards.firstIndex(where: { !$0.isFinite }) {
        throw GRPOError.invalidValue(argument: "rewards[\(bad)]", value: Double(rewards[bad]),
                                     why: "rewards must be finite (a NaN would poison its whole group)")
    }
    var out = [Float](repeating: 0, count: rewards.count)
    let eps = Double(epsilon)
    for g in 0..<(rewards.count / groupSize) {
        let base = g * groupSize
        if groupSize == 1 {
            // verl: singleton group → mean 0, std 1.
            let r = Double(rewards[base])
            out[base] = Float(scaleByStd ? r / (1 + eps) : r)
            continue
        }
        let group = rewards[base..<(base + groupSize)]
        if group.allSatisfy({ $0 == group.first! }) { continue }  // exactly 0, not a rounding residue / ε
        var mean = 0.0
        for i in 0..<groupSize { mean += Double(rewards[base + i]) }
        mean /= Double(groupSize)
        var ss = 0.0
        for i in 0..<groupSize { let d = Double(rewards[base + i]) - mean; ss += d * d }
        let std = (ss / Double(unbiasedStd ? groupSize - 1 : groupSize)).squareRoot()
        for i in 0..<groupSize {
            let centered = Double(rewards[base + i]) - mean
            out[base + i] = Float(scaleByStd ? centered / (std + eps) : centered)
        }
    }
    return out
}
