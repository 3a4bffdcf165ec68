import Foundation

/// A 64-byte aligned, fixed-size Float buffer (parameters, gradients, optimizer state, activation arenas).
/// Reference type so that one allocation is shared; `pointer` stays valid for the buffer's lifetime.
public final class FloatBuffer: @unchecked Sendable {  // @unchecked: callers coordinate writes (no internal state)
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>
    /// Bytes of the anonymous mapping (`init(untouchedCount:)`), 0 for a heap allocation.
    private let mappedBytes: Int

    /// Zero-initialised buffer of `count` floats.
    public init(count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(1, count))
        pointer.initialize(repeating: 0, count: max(1, count))
        mappedBytes = 0
    }

    /// A zero buffer of `count` floats in an anonymous mapping whose pages take memory only once written: for a
    /// model whose matrices live elsewhere (BF16 base weights), where only the vectors (norms, biases) scattered
    /// through the layout are ever written here, so the buffer's resident size is a few pages per layer, not the
    /// model's F32 size. Reading an unwritten range gives zeros (the kernel's zero page).
    public init(untouchedCount count: Int) {
        self.count = count
        let bytes = (max(1, count) * 4 + 4095) / 4096 * 4096
        guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              p != MAP_FAILED else {
            fatalError("FloatBuffer: mmap of \(bytes) bytes failed (errno \(errno))")
        }
        pointer = p.bindMemory(to: Float.self, capacity: max(1, count))
        mappedBytes = bytes
    }

    deinit {
        if mappedBytes > 0 { munmap(UnsafeMutableRawPointer(pointer), mappedBytes) } else {
            UnsafeMutableRawPointer(pointer).deallocate()
        }
    }

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

/// A 64-byte aligned, zero-initialised buffer of bfloat16 bit patterns (BF16 base weights: the model's matrices
/// at the same element offsets as `ParameterLayout`'s floats).
public final class BF16Buffer: @unchecked Sendable {  // @unchecked: callers coordinate writes
    public let count: Int
    public let pointer: UnsafeMutablePointer<UInt16>

    public init(count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 2, alignment: 64)
        pointer = raw.bindMemory(to: UInt16.self, capacity: max(1, count))
        pointer.initialize(repeating: 0, count: max(1, count))
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
}
