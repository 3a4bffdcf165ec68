import Testing

/// Result of comparing two float arrays element by element.
public struct Closeness: CustomStringConvertible, Sendable {
    public var count: Int
    public var maxAbsDiff: Double
    public var maxAbsDiffIndex: Int
    /// First index where |a - e| > atol + rtol * |e| (or a NaN/Inf mismatch), nil when all are close.
    public var firstBadIndex: Int?
    public var firstBadActual: Double = 0
    public var firstBadExpected: Double = 0

    public var description: String {
        var s = "n=\(count) max|Δ|=\(maxAbsDiff) at [\(maxAbsDiffIndex)]"
        if let i = firstBadIndex { s += ", first bad [\(i)]: actual \(firstBadActual) expected \(firstBadExpected)" }
        return s
    }
}

/// Compares `actual` to `expected` with |a - e| <= atol + rtol * |e|. NaN never compares close.
public func closeness<A: BinaryFloatingPoint, E: BinaryFloatingPoint>(
    _ actual: some Collection<A>, _ expected: some Collection<E>, atol: Double, rtol: Double
) -> Closeness {
    var c = Closeness(count: actual.count, maxAbsDiff: 0, maxAbsDiffIndex: 0, firstBadIndex: nil)
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        let ad = Double(a), ed = Double(e)
        let d = abs(ad - ed)
        if d > c.maxAbsDiff || d.isNaN { c.maxAbsDiff = d; c.maxAbsDiffIndex = i }
        let ok = ad == ed || d <= atol + rtol * abs(ed)
        if !ok && c.firstBadIndex == nil {
            c.firstBadIndex = i; c.firstBadActual = ad; c.firstBadExpected = ed
        }
    }
    return c
}

/// Records a test issue (with the caller's file:line) when the arrays differ in length or any element
/// is outside tolerance. The message names the tensor, the max abs diff and the first bad index.
@discardableResult
public func expectClose<A: BinaryFloatingPoint, E: BinaryFloatingPoint>(
    _ actual: some Collection<A>, _ expected: some Collection<E>,
    atol: Double = 1e-5, rtol: Double = 1e-4, _ name: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) -> Closeness {
    guard actual.count == expected.count else {
        Issue.record("\(name): length \(actual.count) != expected \(expected.count)", sourceLocation: sourceLocation)
        return Closeness(count: actual.count, maxAbsDiff: .infinity, maxAbsDiffIndex: 0, firstBadIndex: 0)
    }
    let c = closeness(actual, expected, atol: atol, rtol: rtol)
    if c.firstBadIndex != nil {
        Issue.record("\(name): not close (atol \(atol), rtol \(rtol)): \(c)", sourceLocation: sourceLocation)
    }
    return c
}

/// Scalar version of `expectClose`.
public func expectClose(
    _ actual: Double, _ expected: Double, atol: Double = 1e-5, rtol: Double = 1e-4, _ name: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) {
    expectClose([actual], [expected], atol: atol, rtol: rtol, name, sourceLocation: sourceLocation)
}
