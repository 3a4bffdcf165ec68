/// A 64-byte aligned, fixed-size Float buffer (parameters, gradients, optimizer state, activation arenas).
/// Reference type so that one allocation is shared; `pointer` stays valid for the buffer's lifetime.
public final class FloatBuffer: @unchecked Sendable {  // @unchecked: callers coordinate writes (no internal state)
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    /// Zero-initialised buffer of `count` floats.
    public init(count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(1, count))
        pointer.initialize(repeating: 0, count: max(1, count))
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    public func zero() { pointer.update(repeating: 0, count: count) }

    /// Copies another buffer of the same size into this one.
    public func copy(from other: FloatBuffer) {
        precondition(other.count == count, "FloatBuffer.copy: \(other.count) != \(count)")
        pointer.update(from: other.pointer, count: count)
    }

    public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }
}
