import Foundation

/// The floating-point types the GRPO math runs in: `Float` for training, `Double` for finite-difference tests
/// (the core is written once, generically, and specialised for both inside this module).
public protocol GRPOScalar: BinaryFloatingPoint, Sendable {
    /// e^x in this precision (libm `expf` / `exp`).
    static func grpoExp(_ x: Self) -> Self
}

extension Float: GRPOScalar {
    @inline(__always) public static func grpoExp(_ x: Float) -> Float { Foundation.exp(x) }
}

extension Double: GRPOScalar {
    @inline(__always) public static func grpoExp(_ x: Double) -> Double { Foundation.exp(x) }
}
