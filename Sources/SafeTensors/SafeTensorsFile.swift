import Foundation
import Shared

/// A safetensors file opened for reading: the header is parsed and validated strictly on open (like the
/// reference Rust implementation), the data section is memory-mapped and converted on access.
///
/// Format: 8-byte little-endian header length N, N bytes of JSON
/// `{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}`, then the data
/// section; offsets are relative to the data section, and the tensors must tile it exactly (no gap, no overlap,
/// no trailing bytes).
public struct SafeTensorsFile: @unchecked Sendable {  // @unchecked: `Data` (mmap) is immutable after init
    /// One header entry.
    public struct TensorInfo: Sendable, Equatable {
        public var dtype: SafeTensorsDType
        public var shape: [Int]
        /// Byte range relative to the start of the data section.
        public var begin: Int
        public var end: Int
        public var count: Int { shape.reduce(1, *) }
    }

    /// The file this was read from (used in error messages).
    public let url: URL
    public let metadata: [String: String]
    /// Tensor entries by name.
    public let tensors: [String: TensorInfo]
    private let data: Data
    private let dataStart: Int
    /// The open file when opened from one (not an in-memory image): F32 tensors are read from it with pread(2)
    /// (see `readFloats`). Opened together with the mapping, so both see the same file even if the path is
    /// replaced (e.g. an atomic re-save) in between.
    private var descriptor: Descriptor? = nil

    final class Descriptor: @unchecked Sendable {  // immutable fd, closed once
        let fd: Int32
        init(_ fd: Int32) { self.fd = fd }
        deinit { close(fd) }
    }

    /// Sorted tensor names.
    public var tensorNames: [String] { tensors.keys.sorted() }

    /// Largest header accepted (the Rust implementation uses 100 MB too).
    public static let maxHeaderBytes = 100_000_000

    /// Opens and validates `url`. Errors (`SafeTensorsError`) name the file and the offending tensor.
    public init(contentsOf url: URL) throws {
        let path = url.path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SafeTensorsError(.io, file: path, "cannot open: \(String(cString: strerror(errno)))") }
        let d = Descriptor(fd)
        // Map what the descriptor refers to (/proc/self/fd/N), not the path again.
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: "/proc/self/fd/\(fd)"), options: .alwaysMapped)
        } catch {
            throw SafeTensorsError(.io, file: path, "cannot read: \(error.localizedDescription)")
        }
        try self.init(data: data, url: url)
        descriptor = d
    }

    /// Parses an in-memory safetensors image; `url` is only used to name the source in errors.
    public init(data: Data, url: URL) throws {
        let path = url.path
        self.url = url
        self.data = data
        guard data.count >= 8 else {
            throw SafeTensorsError(.badHeaderLength, file: path, "file is \(data.count) bytes, shorter than the 8-byte header length")
        }
        let n64: UInt64 = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard n64 <= UInt64(Self.maxHeaderBytes) else {
            throw SafeTensorsError(.badHeaderLength, file: path, "header length \(n64) exceeds the \(Self.maxHeaderBytes)-byte limit")
        }
        let n = Int(n64)
        guard n >= 2, 8 + n <= data.count else {
            throw SafeTensorsError(.badHeaderLength, file: path, "header length \(n) but the file has only \(data.count - 8) bytes after the length field")
        }
        let headerBytes = data.subdata(in: (data.startIndex + 8)..<(data.startIndex + 8 + n))
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw SafeTensorsError(.badJSON, file: path, "header does not start with '{'")
        }
        let header: RawHeader
        do {
            header = try JSONDecoder().decode(RawHeader.self, from: headerBytes)
        } catch let e as RawHeader.EntryError {
            throw SafeTensorsError(.badEntry, file: path, tensor: e.tensor, e.detail)
        } catch {
            throw SafeTensorsError(.badJSON, file: path, "header is not a valid JSON object of tensor entries: \(error)")
        }
        let metadata = header.metadata
        var tensors: [String: TensorInfo] = [:]
        for (name, e) in header.entries {
            guard let dtype = SafeTensorsDType(rawValue: e.dtype) else {
                throw SafeTensorsError(.unsupportedDType, file: path, tensor: name, "unsupported dtype '\(e.dtype)' (supported: \(SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let shape = e.shape
            guard shape.allSatisfy({ $0 >= 0 }) else {
                throw SafeTensorsError(.badShape, file: path, tensor: name, "shape \(shape) has a negative dimension")
            }
            guard e.data_offsets.count == 2 else {
                throw SafeTensorsError(.badEntry, file: path, tensor: name, "'data_offsets' must be [begin, end], got \(e.data_offsets)")
            }
            let b = e.data_offsets[0], en = e.data_offsets[1]
            var count = 1
            for d in shape {
                let (p, o) = count.multipliedReportingOverflow(by: d)
                guard !o else { throw SafeTensorsError(.badShape, file: path, tensor: name, "element count of shape \(shape) overflows") }
                count = p
            }
            let (bytes, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !o else { throw SafeTensorsError(.badShape, file: path, tensor: name, "byte size of shape \(shape) overflows") }
            guard b >= 0, en >= b else {
                throw SafeTensorsError(.badOffsets, file: path, tensor: name, "data_offsets [\(b), \(en)] are reversed or negative")
            }
            guard en - b == bytes else {
                throw SafeTensorsError(.badOffsets, file: path, tensor: name, "data_offsets [\(b), \(en)] span \(en - b) bytes but \(e.dtype) \(shape) needs \(bytes)")
            }
            tensors[name] = TensorInfo(dtype: dtype, shape: shape, begin: b, end: en)
        }
        // The tensors must tile the data section exactly.
        let dataLen = data.count - 8 - n
        let ordered = tensors.sorted { ($0.value.begin, $0.value.end, $0.key) < ($1.value.begin, $1.value.end, $1.key) }
        var cursor = 0
        for (name, t) in ordered {
            if t.begin < cursor {
                let prev = ordered.last { $0.value.end > t.begin && $0.key != name && $0.value.begin <= t.begin }?.key ?? "?"
                throw SafeTensorsError(.badOffsets, file: path, tensor: name, "data_offsets [\(t.begin), \(t.end)] overlap tensor '\(prev)' (which ends at \(cursor))")
            }
            if t.begin > cursor {
                throw SafeTensorsError(.badOffsets, file: path, tensor: name, "data_offsets start at \(t.begin), leaving a gap after byte \(cursor)")
            }
            if t.end > dataLen {
                throw SafeTensorsError(.truncated, file: path, tensor: name, "data_offsets [\(t.begin), \(t.end)] but the data section has only \(dataLen) bytes (file truncated?)")
            }
            cursor = t.end
        }
        if cursor != dataLen {
            throw SafeTensorsError(.trailingBytes, file: path, "\(dataLen - cursor) bytes after the last tensor (data section \(dataLen) bytes, tensors cover \(cursor))")
        }
        self.metadata = metadata
        self.tensors = tensors
        self.dataStart = 8 + n
    }

    public func shape(of name: String) -> [Int]? { tensors[name]?.shape }
    public func dtype(of name: String) -> SafeTensorsDType? { tensors[name]?.dtype }

    private func info(_ name: String) throws -> TensorInfo {
        guard let t = tensors[name] else {
            throw SafeTensorsError(.missingTensor, file: url.path, tensor: name, "no such tensor (file has \(tensors.count) tensors)")
        }
        return t
    }

    /// The tensor converted to Float (F32, BF16, F16, F64), row-major.
    public func floats(_ name: String) throws -> [Float] {
        let t = try info(name)
        return try [Float](unsafeUninitializedCapacity: t.count) { buf, initialized in
            try readFloats(name, into: buf.baseAddress!, count: t.count)
            initialized = t.count
        }
    }

    /// pread(2) of `count` bytes at file offset `offset` (little-endian host: F32 bytes are the floats).
    private func readBytes(_ fd: Int32, at offset: Int, into dst: UnsafeMutableRawPointer, count: Int, tensor: String) throws {
        var done = 0
        while done < count {
            let r = pread(fd, dst + done, count - done, off_t(offset + done))
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else {
                throw SafeTensorsError(.io, file: url.path, tensor: tensor,
                                       r == 0 ? "file ended at byte \(offset + done), tensor data runs to \(offset + count)" : "read failed: \(String(cString: strerror(errno)))")
            }
            done += r
        }
    }

    /// Converts the tensor straight into `into` (e.g. its slot in a flat parameter buffer); `count` must equal
    /// the tensor's element count.
    public func readFloats(_ name: String, into dst: UnsafeMutablePointer<Float>, count: Int) throws {
        let t = try info(name)
        guard t.dtype.isFloatingPoint else {
            throw SafeTensorsError(.wrongDType, file: url.path, tensor: name, "dtype \(t.dtype.rawValue) is not a float type")
        }
        guard count == t.count else {
            throw SafeTensorsError(.countMismatch, file: url.path, tensor: name, "destination holds \(count) floats but the tensor \(t.shape) has \(t.count)")
        }
        if count == 0 { return }
        let start = dataStart + t.begin
        if t.dtype == .f32, let d = descriptor {
            // pread(2) straight into the destination: copying out of the memory map instead would leave every page
            // of the file mapped and resident, a second copy of a checkpoint in the RSS while it loads.
            try readBytes(d.fd, at: start, into: UnsafeMutableRawPointer(dst), count: count * 4, tensor: name)
            return
        }
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let src = raw.baseAddress! + start
            switch t.dtype {
            case .f32:
                // Little-endian host (x86-64/arm64): the bytes are the floats.
                UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
            case .bf16:
                for i in 0..<count {
                    dst[i] = BFloat16.toFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                }
            case .f16:
                for i in 0..<count {
                    dst[i] = Float(Float16(bitPattern: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                }
            case .f64:
                for i in 0..<count {
                    dst[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Double.self))
                }
            default:
                break  // excluded above
            }
            Self.releasePages(src, byteCount: t.end - t.begin)
        }
    }

    /// Asks the kernel to reclaim the mapped file pages of a tensor that has just been converted out of the map
    /// (BF16/F16/F64; F32 is pread): otherwise every page a load touched stays resident until the file is closed,
    /// and loading a BF16 model peaks at its Float size plus the whole file (`MADV_PAGEOUT`). Contents are preserved (clean file
    /// pages are re-read on a later access; anonymous memory, if `Data` did not map the file, is left alone or
    /// swapped), so this is only advice; errors (an older kernel) are ignored. Whole pages inside the range only.
    static func releasePages(_ start: UnsafeRawPointer, byteCount: Int) {
        #if os(Linux)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = (Int(bitPattern: start) + page - 1) / page * page
        let hi = (Int(bitPattern: start) + byteCount) / page * page
        guard hi > lo, let p = UnsafeMutableRawPointer(bitPattern: lo) else { return }
        _ = madvise(p, hi - lo, 21 /* MADV_PAGEOUT, Linux 5.4+ */)
        #endif
    }

    /// The tensor as Int64 (I64, I32, I16, I8, U8, BOOL).
    public func ints(_ name: String) throws -> [Int64] {
        let t = try info(name)
        let start = dataStart + t.begin
        let n = t.count
        return try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> [Int64] in
            let src = raw.baseAddress! + start
            switch t.dtype {
            case .i64: return (0..<n).map { src.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self) }
            case .i32: return (0..<n).map { Int64(src.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
            case .i16: return (0..<n).map { Int64(src.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self)) }
            case .i8: return (0..<n).map { Int64(src.loadUnaligned(fromByteOffset: $0, as: Int8.self)) }
            case .u8, .bool: return (0..<n).map { Int64(src.loadUnaligned(fromByteOffset: $0, as: UInt8.self)) }
            default:
                throw SafeTensorsError(.wrongDType, file: url.path, tensor: name, "dtype \(t.dtype.rawValue) is not an integer type")
            }
        }
    }

    /// The raw little-endian bytes of a tensor.
    public func rawBytes(_ name: String) throws -> Data {
        let t = try info(name)
        return data.subdata(in: (data.startIndex + dataStart + t.begin)..<(data.startIndex + dataStart + t.end))
    }
}

/// The header as JSONDecoder sees it: `__metadata__` (string → string) plus tensor entries. Decoding is strict:
/// integers must be JSON integers, unknown entry fields are ignored (as the Rust implementation does).
private struct RawHeader: Decodable {
    struct Entry: Decodable {
        var dtype: String
        var shape: [Int]
        var data_offsets: [Int]
    }
    struct EntryError: Error { var tensor: String; var detail: String }
    typealias Key = AnyCodingKey
    var metadata: [String: String] = [:]
    var entries: [String: Entry] = [:]

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        for k in c.allKeys {
            if k.stringValue == "__metadata__" {
                do { metadata = try c.decode([String: String].self, forKey: k) } catch {
                    throw EntryError(tensor: "__metadata__", detail: "__metadata__ must map strings to strings")
                }
                continue
            }
            do { entries[k.stringValue] = try c.decode(Entry.self, forKey: k) } catch let DecodingError.keyNotFound(key, _) {
                throw EntryError(tensor: k.stringValue, detail: "entry lacks '\(key.stringValue)'")
            } catch let DecodingError.typeMismatch(_, ctx) {
                throw EntryError(tensor: k.stringValue, detail: "entry field '\(ctx.codingPath.dropFirst().map(\.stringValue).joined(separator: "."))' has the wrong type (dtype: string, shape/data_offsets: integer arrays)")
            } catch {
                throw EntryError(tensor: k.stringValue, detail: "malformed entry: \(error)")
            }
        }
    }
}
