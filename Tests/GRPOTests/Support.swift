import Foundation
import TestSupport

/// Deterministic generator for the random tests (SplitMix64; reproducible across runs and machines).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform(_ lo: Double, _ hi: Double) -> Double { Double.random(in: lo..<hi, using: &self) }
    /// Box–Muller normal sample.
    mutating func normal(_ sd: Double = 1) -> Double {
        let u1 = max(uniform(0, 1), 1e-300), u2 = uniform(0, 1)
        return sd * (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }
}

/// Decodes `Tests/Fixtures/grpo/<name>` (written by scripts/ref/grpo_fixtures.py).
func loadFixture<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
    let url = Fixtures.url("grpo/\(name)")
    return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
}
