import Foundation
import Shared

/// Builds a safetensors file: tensors are copied (and converted) when added, then `write` lays them out like the
/// Python/Rust library does — tensors ordered by dtype (the Rust enum order, descending: I64, F64, F32, I32, BF16,
/// F16, I16, I8, U8, BOOL — larger types first, so every tensor is aligned) then by name; metadata keys sorted; header JSON padded with spaces to a multiple of 8 bytes — and writes atomically (temp file + rename).
public struct SafeTensorsWriter: Sendable {
    private struct Entry: Sendable {
        var name: String
        var dtype: SafeTensorsDType
        var shape: [Int]
        var bytes: Data
    }
    private var entries: [Entry] = []
    private var names: Set<String> = []

    public init() {}

    /// Number of tensors added so far.
    public var count: Int { entries.count }

    private mutating func append(_ name: String, _ dtype: SafeTensorsDType, _ shape: [Int], _ bytes: Data, _ n: Int) throws {
        guard !names.contains(name) else {
            throw SafeTensorsError(.duplicateName, file: "(writer)", tensor: name, "tensor added twice")
        }
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == n else {
            throw SafeTensorsError(.countMismatch, file: "(writer)", tensor: name, "shape \(shape) has \(shape.reduce(1, *)) elements but \(n) values were given")
        }
        names.insert(name)
        entries.append(Entry(name: name, dtype: dtype, shape: shape, bytes: bytes))
    }

    /// Adds a float tensor stored as `dtype` (.f32, .bf16 with round-to-nearest-even, .f16, or .f64).
    public mutating func add(name: String, shape: [Int], floats: UnsafeBufferPointer<Float>, as dtype: SafeTensorsDType = .f32) throws {
        let n = floats.count
        var bytes = Data(count: n * dtype.byteSize)
        try bytes.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) in
            guard n > 0 else { return }
            let dst = raw.baseAddress!
            switch dtype {
            case .f32:
                dst.copyMemory(from: floats.baseAddress!, byteCount: n * 4)
            case .bf16:
                let p = dst.assumingMemoryBound(to: UInt16.self)
                for i in 0..<n { p[i] = BFloat16.from(floats[i]) }
            case .f16:
                let p = dst.assumingMemoryBound(to: UInt16.self)
                for i in 0..<n { p[i] = Float16(floats[i]).bitPattern }
            case .f64:
                let p = dst.assumingMemoryBound(to: Double.self)
                for i in 0..<n { p[i] = Double(floats[i]) }
            default:
                throw SafeTensorsError(.wrongDType, file: "(writer)", tensor: name, "cannot store floats as \(dtype.rawValue)")
            }
        }
        try append(name, dtype, shape, bytes, n)
    }

    /// Array convenience for `add(name:shape:floats:as:)`.
    public mutating func add(name: String, shape: [Int], floats: [Float], as dtype: SafeTensorsDType = .f32) throws {
        try floats.withUnsafeBufferPointer { try add(name: name, shape: shape, floats: $0, as: dtype) }
    }

    /// Adds an integer tensor stored as .i64 or .i32 (values must fit).
    public mutating func add(name: String, shape: [Int], ints: [Int64], as dtype: SafeTensorsDType = .i64) throws {
        let n = ints.count
        var bytes = Data(count: n * dtype.byteSize)
        try bytes.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) in
            guard n > 0 else { return }
            switch dtype {
            case .i64:
                let p = raw.baseAddress!.assumingMemoryBound(to: Int64.self)
                for i in 0..<n { p[i] = ints[i] }
            case .i32:
                let p = raw.baseAddress!.assumingMemoryBound(to: Int32.self)
                for i in 0..<n {
                    guard let v = Int32(exactly: ints[i]) else {
                        throw SafeTensorsError(.countMismatch, file: "(writer)", tensor: name, "value \(ints[i]) at [\(i)] does not fit I32")
                    }
                    p[i] = v
                }
            default:
                throw SafeTensorsError(.wrongDType, file: "(writer)", tensor: name, "cannot store ints as \(dtype.rawValue)")
            }
        }
        try append(name, dtype, shape, bytes, n)
    }

    /// The complete file image.
    public func serialized(metadata: [String: String] = [:]) -> Data {
        let (header, order) = Self.header(entries.map { ($0.name, $0.dtype, $0.shape, $0.bytes.count) }, metadata: metadata)
        var out = Data(capacity: header.count + order.reduce(0) { $0 + entries[$1].bytes.count })
        out.append(header)
        for i in order { out.append(entries[i].bytes) }
        return out
    }

    /// The 8-byte length plus the space-padded JSON header for tensors (name, dtype, shape, byte count), and the
    /// order their bytes follow it in (indices into `tensors`): by dtype rank descending, then name — the layout
    /// of the reference implementation. Shared by `serialized` and `stream`, so both produce the same bytes.
    static func header(_ tensors: [(name: String, dtype: SafeTensorsDType, shape: [Int], byteCount: Int)],
                       metadata: [String: String]) -> (Data, [Int]) {
        let order = tensors.indices.sorted {
            (tensors[$0].dtype.layoutRank, tensors[$1].name) > (tensors[$1].dtype.layoutRank, tensors[$0].name)
        }
        var json = "{"
        var first = true
        if !metadata.isEmpty {
            json += "\"__metadata__\":{"
            json += metadata.keys.sorted().map { "\(jsonStringLiteral($0)):\(jsonStringLiteral(metadata[$0]!))" }.joined(separator: ",")
            json += "}"
            first = false
        }
        var offset = 0
        for i in order {
            let e = tensors[i]
            if !first { json += "," }
            first = false
            let end = offset + e.byteCount
            json += "\(jsonStringLiteral(e.name)):{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(e.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}"
            offset = end
        }
        json += "}"
        var header = Data(json.utf8)
        let pad = (8 - header.count % 8) % 8
        header.append(contentsOf: [UInt8](repeating: 0x20, count: pad))
        var out = Data(capacity: 8 + header.count)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(header)
        return (out, order)
    }

    /// Writes the file atomically: a temporary file in the same directory is written, flushed and renamed over
    /// `url`, so readers never see a half-written checkpoint.
    public func write(to url: URL, metadata: [String: String] = [:]) throws {
        try SafeTensorsWriter.atomicWrite(serialized(metadata: metadata), to: url)
    }

    /// Temp file + fsync + rename(2) + fsync of the directory (`AtomicFile`); errors as `SafeTensorsError(.io)`
    /// naming the file and the OS's reason.
    public static func atomicWrite(_ data: Data, to url: URL) throws {
        do { try AtomicFile.write(data, to: url) } catch let e as FileSystemError {
            throw SafeTensorsError(.io, file: url.path, e.description)
        }
    }

    /// A float tensor for `stream`: the caller's memory, read during the call only.
    public struct Source {
        public var name: String
        public var shape: [Int]
        public var floats: UnsafeBufferPointer<Float>
        /// Stored dtype: .f32 (bytes written as they are), .bf16 (round-to-nearest-even), .f16.
        public var dtype: SafeTensorsDType
        public init(name: String, shape: [Int], floats: UnsafeBufferPointer<Float>, dtype: SafeTensorsDType = .f32) {
            self.name = name; self.shape = shape; self.floats = floats; self.dtype = dtype
        }
    }

    /// Floats converted per chunk by `stream` (1 MiB of F32 source): the only buffer a streamed save allocates.
    public static let streamChunkElements = 1 << 18

    /// Writes a safetensors file tensor by tensor straight from the caller's memory, atomically (`AtomicFile`):
    /// F32 tensors go from the source to write(2) unchanged; BF16/F16 are converted `streamChunkElements` at a
    /// time into one scratch buffer. No image of the file is built, so the resident memory it costs is one chunk
    /// whatever the model size. The bytes are identical to `serialized` of the same tensors (same header, order
    /// and conversion). `afterChunk` sees the bytes written so far after each chunk; if it throws, the temporary
    /// file is removed and `url` is left as it was (tests use it to fail a save midway).
    public static func stream(_ tensors: [Source], to url: URL, metadata: [String: String] = [:],
                              afterChunk: ((Int) throws -> Void)? = nil) throws {
        var seen = Set<String>()
        for t in tensors {
            guard seen.insert(t.name).inserted else {
                throw SafeTensorsError(.duplicateName, file: url.path, tensor: t.name, "tensor added twice")
            }
            guard t.shape.allSatisfy({ $0 >= 0 }), t.shape.reduce(1, *) == t.floats.count else {
                throw SafeTensorsError(.countMismatch, file: url.path, tensor: t.name,
                                       "shape \(t.shape) has \(t.shape.reduce(1, *)) elements but \(t.floats.count) values were given")
            }
            guard [.f32, .bf16, .f16].contains(t.dtype) else {
                throw SafeTensorsError(.wrongDType, file: url.path, tensor: t.name, "cannot stream floats as \(t.dtype.rawValue) (F32, BF16, F16)")
            }
        }
        let (header, order) = Self.header(tensors.map { ($0.name, $0.dtype, $0.shape, $0.floats.count * $0.dtype.byteSize) },
                                          metadata: metadata)
        let file: AtomicFile
        do { file = try AtomicFile(url: url) } catch let e as FileSystemError {
            throw SafeTensorsError(.io, file: url.path, e.description)
        }
        let chunk = streamChunkElements
        let scratch = UnsafeMutablePointer<UInt16>.allocate(capacity: chunk)
        defer { scratch.deallocate() }
        do {
            try file.write(header)
            for i in order {
                let t = tensors[i]
                var start = 0
                while start < t.floats.count {
                    let n = min(chunk, t.floats.count - start)
                    let src = t.floats.baseAddress! + start
                    switch t.dtype {
                    case .f32:
                        // Little-endian host: the floats are the bytes.
                        try file.write(UnsafeRawBufferPointer(start: src, count: n * 4))
                    case .bf16:
                        for j in 0..<n { scratch[j] = BFloat16.from(src[j]) }
                        try file.write(UnsafeRawBufferPointer(start: scratch, count: n * 2))
                    default:
                        for j in 0..<n { scratch[j] = Float16(src[j]).bitPattern }
                        try file.write(UnsafeRawBufferPointer(start: scratch, count: n * 2))
                    }
                    start += n
                    try afterChunk?(file.bytesWritten)
                }
            }
            try file.commit()
        } catch let e as FileSystemError {
            file.abandon()
            throw SafeTensorsError(.io, file: url.path, e.description)
        } catch {
            file.abandon()
            throw error
        }
    }
}
