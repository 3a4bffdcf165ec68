import Foundation
import Shared

/// Deterministic random numbers for tests (SplitMix64): the same seed gives the same sequence on every run and
/// machine, so a failing random case can be replayed.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    var base: SplitMix64
    public init(seed: UInt64) { base = SplitMix64(seed: seed) }
    public mutating func next() -> UInt64 { base.next() }
    public mutating func uniform(_ lo: Double, _ hi: Double) -> Double { Double.random(in: lo..<hi, using: &self) }
    /// Box–Muller normal sample.
    public mutating func normal(_ sd: Double = 1) -> Double {
        let u1 = max(uniform(0, 1), 1e-300), u2 = uniform(0, 1)
        return sd * (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }
}
