import Foundation
import SafeTensors
import Shared
import TestSupport

/// A fixture file written by scripts/ref/kernel_fixtures.py.
struct KernelFixture {
    let file: SafeTensorsFile
    init(_ op: String) throws {
        file = try SafeTensorsFile(contentsOf: Fixtures.url("kernels/\(op).safetensors"))
    }
    func floats(_ name: String) throws -> [Float] { try file.floats(name) }
    func buf(_ name: String) throws -> Buf { Buf(try file.floats(name)) }
    func int32s(_ name: String) throws -> IBuf { IBuf(try file.ints(name).map { Int32($0) }) }
    func ints(_ name: String) throws -> [Int] { try file.ints(name).map { Int($0) } }
    func scalar(_ name: String) throws -> Float { try file.floats(name)[0] }
}

/// An owned Float buffer (tests pass raw pointers to kernels without nesting withUnsafe… closures).
final class Buf {
    let p: UnsafeMutablePointer<Float>
    let count: Int
    init(_ values: [Float]) {
        count = values.count
        p = .allocate(capacity: max(1, count))
        p.initialize(from: values, count: count)
    }
    convenience init(zeros n: Int) { self.init([Float](repeating: 0, count: n)) }
    var array: [Float] { Array(UnsafeBufferPointer(start: p, count: count)) }
    var cp: UnsafePointer<Float> { UnsafePointer(p) }
    func zero() { p.update(repeating: 0, count: count) }
    deinit { p.deallocate() }
}

/// An owned Int32 buffer.
final class IBuf {
    let p: UnsafeMutablePointer<Int32>
    let count: Int
    init(_ values: [Int32]) {
        count = values.count
        p = .allocate(capacity: max(1, count))
        p.initialize(from: values, count: count)
    }
    var cp: UnsafePointer<Int32> { UnsafePointer(p) }
    deinit { p.deallocate() }
}

func times(_ a: [Float], _ s: Float) -> [Float] { a.map { $0 * s } }

/// Deterministic normal samples (Box-Muller over a SplitMix64 stream).
struct TestRNG {
    var base: SplitMix64
    init(seed: UInt64) { base = SplitMix64(seed: seed) }
    mutating func next() -> UInt64 { base.next() }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func normal() -> Double {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * .pi * u2)
    }
    mutating func normals(_ n: Int, scale: Double = 1, mean: Double = 0) -> [Float] {
        (0..<n).map { _ in Float(mean + scale * normal()) }
    }
}
