import Foundation

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
                for i in 0..<n { p[i] = BFloat16Bits.from(floats[i]) }
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
        let ordered = entries.sorted { ($0.dtype.layoutRank, $1.name) > ($1.dtype.layoutRank, $0.name) }
        var json = "{"
        var first = true
        if !metadata.isEmpty {
            json += "\"__metadata__\":{"
            json += metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }.joined(separator: ",")
            json += "}"
            first = false
        }
        var offset = 0
        for e in ordered {
            if !first { json += "," }
            first = false
            let end = offset + e.bytes.count
            json += "\(jsonString(e.name)):{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(e.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}"
            offset = end
        }
        json += "}"
        var header = Data(json.utf8)
        let pad = (8 - header.count % 8) % 8
        header.append(contentsOf: [UInt8](repeating: 0x20, count: pad))
        var out = Data(capacity: 8 + header.count + offset)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(header)
        for e in ordered { out.append(e.bytes) }
        return out
    }

    /// Writes the file atomically: a temporary file in the same directory is written, flushed and renamed over
    /// `url`, so readers never see a half-written checkpoint.
    public func write(to url: URL, metadata: [String: String] = [:]) throws {
        try SafeTensorsWriter.atomicWrite(serialized(metadata: metadata), to: url)
    }

    /// Temp file + fsync + rename(2) in `url`'s directory.
    public static func atomicWrite(_ data: Data, to url: URL) throws {
        let dir = url.deletingLastPathComponent()
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else {
            throw SafeTensorsError(.io, file: url.path, "cannot create temporary file \(tmp.path): \(String(cString: strerror(errno)))")
        }
        var ok = false
        defer { if !ok { unlink(tmp.path) } }
        let err: Int32? = data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Int32? in
            var done = 0
            while done < raw.count {
                let w = Foundation.write(fd, raw.baseAddress! + done, raw.count - done)
                if w < 0 { if errno == EINTR { continue }; return errno }
                done += w
            }
            return fsync(fd) == 0 ? nil : errno
        }
        close(fd)
        if let e = err {
            throw SafeTensorsError(.io, file: url.path, "writing \(tmp.path) failed: \(String(cString: strerror(e)))")
        }
        guard rename(tmp.path, url.path) == 0 else {
            throw SafeTensorsError(.io, file: url.path, "rename from \(tmp.path) failed: \(String(cString: strerror(errno)))")
        }
        ok = true
    }
}

/// JSON string literal with the escapes JSON requires.
func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}
