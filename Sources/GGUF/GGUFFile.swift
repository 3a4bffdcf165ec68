import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One tensor's entry in the GGUF header.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// ggml order (`ne`): `dimensions[0]` varies fastest (the row length).
    public let dimensions: [Int]
    public let type: GGMLType
    /// Byte offset relative to the start of the data section (a multiple of the file's alignment).
    public let offset: Int
    public let elementCount: Int
    public let byteCount: Int

    /// Row-major shape as numpy / PyTorch / safetensors see it (`dimensions` reversed), e.g. [out, in].
    public var shape: [Int] { dimensions.reversed() }
    /// Elements per row (`ne[0]`; 1 for a 0-d tensor).
    public var rowLength: Int { dimensions.first ?? 1 }
    /// Rows (`elementCount / rowLength`).
    public var rowCount: Int { rowLength == 0 ? 0 : elementCount / rowLength }
    /// Bytes of one row (a whole number of blocks).
    public var rowBytes: Int { rowLength / type.blockGeometry.blockSize * type.blockGeometry.typeSize }
}

/// A GGUF file (ggml's model container, versions 2 and 3) opened for reading: the header — metadata key/values
/// and tensor infos — is parsed and validated on open; the data section is memory-mapped and dequantized on
/// access, so a model can be streamed tensor by tensor into its own buffers without a second copy.
///
/// Layout (ggml docs/gguf.md; gguf.c `gguf_init_from_file_impl`), all little-endian:
///   "GGUF" | u32 version | u64 tensor_count | u64 kv_count
///   kv_count × { string key | u32 value_type | value }      string = u64 length + UTF-8 bytes (no NUL)
///                                                           array  = u32 element_type + u64 count + elements
///   tensor_count × { string name | u32 n_dims | n_dims × u64 ne | u32 ggml_type | u64 offset }
///   padding to `general.alignment` (default 32) | data section (tensor offsets are relative to its start).
/// Every count and length is checked against the bytes left in the file before anything is allocated for it.
public final class GGUFFile: @unchecked Sendable {  // @unchecked: immutable after init; the mapping is read-only
    /// The file this was read from (used in error messages).
    public let url: URL
    public let version: UInt32
    /// `general.alignment`, or 32.
    public let alignment: Int
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Metadata by key.
    public let metadata: [String: GGUFValue]
    /// Tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    /// File offset of the data section.
    public let dataOffset: Int
    /// Total file size in bytes.
    public let fileSize: Int

    private let storage: Storage
    private let tensorIndex: [String: Int]

    /// The default alignment of the data section and of every tensor (`GGUF_DEFAULT_ALIGNMENT`).
    public static let defaultAlignment = 32
    /// ggml tensors have at most 4 dimensions (`GGML_MAX_DIMS`).
    public static let maxDimensions = 4
    /// Arrays nested deeper than this are rejected (bounds recursion on a hostile file).
    public static let maxArrayNesting = 8

    /// Memory-maps `url` and parses its header. Errors (`GGUFError`) name the file and the offending key/tensor.
    public convenience init(contentsOf url: URL) throws {
        let storage = try Storage(mapping: url.path)
        try self.init(storage: storage, url: url)
    }

    /// Parses an in-memory GGUF image (copied); `url` only names the source in errors.
    public convenience init(bytes: [UInt8], url: URL = URL(fileURLWithPath: "<memory>")) throws {
        try self.init(storage: Storage(copying: bytes), url: url)
    }

    private init(storage: Storage, url: URL) throws {
        self.url = url
        self.storage = storage
        let path = url.path
        var c = Cursor(base: storage.base, end: storage.count, file: path)
        fileSize = storage.count

        // Header.
        let magic = try c.bytes(4, "the magic")
        guard magic.elementsEqual("GGUF".utf8) else {
            let shown = magic.map { (32...126).contains($0) ? String(UnicodeScalar($0)) : "\\x" + String($0, radix: 16) }.joined()
            throw GGUFError(.badMagic, file: path, "magic is \"\(shown)\", not \"GGUF\" (not a GGUF file)")
        }
        let v = try c.u32("the version")
        guard v == 2 || v == 3 else {
            let hint = v.byteSwapped == 2 || v.byteSwapped == 3 ? " (a big-endian GGUF; only little-endian files are supported)"
                : v == 1 ? " (GGUF v1 is obsolete; re-convert the model)" : ""
            throw GGUFError(.unsupportedVersion, file: path, "version \(v) is not supported (2 or 3)\(hint)")
        }
        version = v
        let tensorCount64 = try c.u64("the tensor count")
        let kvCount64 = try c.u64("the metadata count")
        // Each key/value takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least
        // 8 + 4 + 4 + 8 bytes: counts the rest of the file cannot hold are rejected before any allocation.
        guard kvCount64 <= UInt64(c.remaining / 13) else {
            throw GGUFError(.badCount, file: path, "metadata count \(kvCount64) cannot fit in the \(c.remaining) bytes left in the file")
        }
        guard tensorCount64 <= UInt64(c.remaining / 24) else {
            throw GGUFError(.badCount, file: path, "tensor count \(tensorCount64) cannot fit in the \(c.remaining) bytes left in the file")
        }
        let kvCount = Int(kvCount64), tensorCount = Int(tensorCount64)

        // Metadata.
        var keys: [String] = []
        var meta: [String: GGUFValue] = [:]
        keys.reserveCapacity(kvCount)
        for i in 0..<kvCount {
            let key = try c.string("metadata key #\(i)")
            let rawType = try c.u32("the type of metadata '\(key)'", key: key)
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw GGUFError(.badValueType, file: path, key: key, "value type id \(rawType) is not a GGUF type (0...12)")
            }
            let value = try c.value(type, key: key, depth: 0)
            guard meta[key] == nil else {
                throw GGUFError(.duplicateKey, file: path, key: key, "key appears twice (metadata #\(keys.firstIndex(of: key) ?? -1) and #\(i))")
            }
            keys.append(key)
            meta[key] = value
        }
        metadataKeys = keys
        metadata = meta

        var align = Self.defaultAlignment
        if let a = meta["general.alignment"] {
            guard case .uint32(let av) = a, av > 0, av & (av - 1) == 0 else {
                throw GGUFError(.badAlignment, file: path, key: "general.alignment", "must be a nonzero power of two of type uint32, got \(a.summary)")
            }
            align = Int(av)
        }
        alignment = align

        // Tensor infos.
        var infos: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        infos.reserveCapacity(tensorCount)
        var rawOffsets: [UInt64] = []
        rawOffsets.reserveCapacity(tensorCount)
        for i in 0..<tensorCount {
            let name = try c.string("tensor info #\(i) name")
            guard index[name] == nil else {
                throw GGUFError(.duplicateTensor, file: path, tensor: name, "tensor name appears twice (tensor infos #\(index[name]!) and #\(i))")
            }
            let nDims = try c.u32("the dimension count", tensor: name)
            guard nDims <= UInt32(Self.maxDimensions) else {
                throw GGUFError(.badShape, file: path, tensor: name, "\(nDims) dimensions (ggml allows at most \(Self.maxDimensions))")
            }
            var dims: [Int] = []
            var count = 1
            for d in 0..<Int(nDims) {
                let ne = try c.u64("dimension \(d)", tensor: name)
                guard ne <= UInt64(Int.max) else {
                    throw GGUFError(.badShape, file: path, tensor: name, "dimension \(d) is \(ne), too large")
                }
                dims.append(Int(ne))
                let (p, o) = count.multipliedReportingOverflow(by: Int(ne))
                guard !o else { throw GGUFError(.badShape, file: path, tensor: name, "element count of dimensions \(dims)… overflows") }
                count = p
            }
            let rawType = try c.u32("the tensor type", tensor: name)
            guard let type = GGMLType(rawValue: rawType) else {
                throw GGUFError(.unknownTensorType, file: path, tensor: name, "tensor type id \(rawType) is not a ggml type")
            }
            let (bs, ts) = type.blockGeometry
            let rowLength = dims.first ?? 1
            guard rowLength % bs == 0 else {
                throw GGUFError(.badShape, file: path, tensor: name, "row length \(rowLength) is not a multiple of the \(type) block size \(bs)")
            }
            let (bytes, o) = (count / bs).multipliedReportingOverflow(by: ts)
            guard !o else { throw GGUFError(.badShape, file: path, tensor: name, "byte size of \(type) \(dims) overflows") }
            let off = try c.u64("the data offset", tensor: name)
            guard off % UInt64(align) == 0 else {
                throw GGUFError(.misalignedOffset, file: path, tensor: name, "data offset \(off) is not a multiple of the alignment \(align)")
            }
            index[name] = i
            rawOffsets.append(off)
            infos.append(GGUFTensorInfo(name: name, dimensions: dims, type: type, offset: off <= UInt64(Int.max) ? Int(off) : Int.max,
                                        elementCount: count, byteCount: bytes))
        }

        // Data section: aligned after the header; every tensor must lie inside it, without overlap.
        let headerEnd = c.pos
        let start = (headerEnd + align - 1) / align * align
        let dataLen = max(0, storage.count - start)
        for t in infos {
            let (end, o) = t.offset.addingReportingOverflow(t.byteCount)
            guard !o, end <= dataLen else {
                throw GGUFError(.dataPastEnd, file: path, tensor: t.name,
                                "data [\(t.offset), +\(t.byteCount) bytes) of \(t.type) \(t.shape) extends past the end of the file (data section has \(dataLen) bytes; truncated?)")
            }
        }
        let byOffset = infos.filter { $0.byteCount > 0 }.sorted { ($0.offset, $0.name) < ($1.offset, $1.name) }
        for (a, b) in zip(byOffset, byOffset.dropFirst()) where b.offset < a.offset + a.byteCount {
            throw GGUFError(.overlappingTensors, file: path, tensor: b.name,
                            "data starts at \(b.offset), inside tensor '\(a.name)' [\(a.offset), \(a.offset + a.byteCount))")
        }
        tensors = infos
        tensorIndex = index
        dataOffset = start
    }

    // MARK: - Tensors

    public func tensor(_ name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }

    public func requireTensor(_ name: String) throws -> GGUFTensorInfo {
        guard let t = tensor(name) else {
            throw GGUFError(.missingTensor, file: url.path, tensor: name, "no such tensor (file has \(tensors.count) tensors)")
        }
        return t
    }

    /// The raw bytes of a tensor (valid while this file is alive).
    public func withRawBytes<R>(_ t: GGUFTensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: t.byteCount == 0 ? nil : storage.base! + dataOffset + t.offset, count: t.byteCount))
    }

    /// Dequantizes the whole tensor into `dst` (e.g. its slot in a flat parameter buffer), row-major
    /// (`shape` order); `count` must equal its element count. An unsupported type is an error naming both.
    public func dequantize(_ name: String, into dst: UnsafeMutablePointer<Float>, count: Int) throws {
        let t = try requireTensor(name)
        guard count == t.elementCount else {
            throw GGUFError(.countMismatch, file: url.path, tensor: name, "destination holds \(count) floats but the \(t.type) tensor \(t.shape) has \(t.elementCount)")
        }
        try dequantize(t, rows: 0..<t.rowCount, into: dst)
    }

    /// Dequantizes rows `rows` (of `rowLength` elements each) of `t` into `dst` (`rows.count * rowLength` floats).
    public func dequantize(_ t: GGUFTensorInfo, rows: Range<Int>, into dst: UnsafeMutablePointer<Float>) throws {
        guard let kernel = GGUFDequantize.kernel(for: t.type) else {
            throw GGUFError(.unsupportedType, file: url.path, tensor: t.name,
                            "tensor type \(t.type) is not supported (supported: \(GGUFDequantize.supportedTypes.map(\.name).joined(separator: ", ")))")
        }
        guard rows.lowerBound >= 0, rows.upperBound <= t.rowCount else {
            throw GGUFError(.countMismatch, file: url.path, tensor: t.name, "rows \(rows) out of range (tensor has \(t.rowCount) rows)")
        }
        if rows.isEmpty || t.elementCount == 0 { return }
        let blocksPerRow = t.rowLength / t.type.blockGeometry.blockSize
        let src = storage.base! + dataOffset + t.offset + rows.lowerBound * t.rowBytes
        kernel(src, dst, rows.count * blocksPerRow)
    }

    /// Tells the kernel the mapped pages lying wholly inside `t`'s bytes are not needed any more (they are
    /// dropped from the resident set and re-read from the file if touched again). A loader calls this after
    /// converting each tensor so a model's peak memory is its Float parameters plus one tensor, not plus the
    /// whole file. No effect on an in-memory image.
    public func releasePages(of t: GGUFTensorInfo) {
        guard storage.isMapped, t.byteCount > 0, let base = storage.base else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = dataOffset + t.offset, end = start + t.byteCount
        let a = (start + page - 1) / page * page, b = end / page * page
        guard b > a else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + a), b - a, Int32(MADV_DONTNEED))
    }

    /// The whole tensor as Float, row-major.
    public func floats(_ name: String) throws -> [Float] {
        let t = try requireTensor(name)
        return try [Float](unsafeUninitializedCapacity: t.elementCount) { buf, initialized in
            if t.elementCount > 0 { try dequantize(name, into: buf.baseAddress!, count: t.elementCount) }
            initialized = t.elementCount
        }
    }

    // MARK: - Metadata

    public func value(_ key: String) -> GGUFValue? { metadata[key] }

    private func typed<T>(_ key: String, _ what: String, _ get: (GGUFValue) -> T?) throws -> T? {
        guard let v = metadata[key] else { return nil }
        guard let r = get(v) else {
            throw GGUFError(.wrongValueType, file: url.path, key: key, "expected \(what), found \(v.summary)")
        }
        return r
    }

    /// The string under `key`; nil when absent, an error when it is not a string.
    public func string(_ key: String) throws -> String? { try typed(key, "a string", \.stringValue) }
    /// The integer (any width, fitting Int) under `key`.
    public func int(_ key: String) throws -> Int? { try typed(key, "an integer", \.intValue) }
    /// The number (float32/float64, or an integer) under `key`, as Double.
    public func double(_ key: String) throws -> Double? { try typed(key, "a number", \.doubleValue) }
    /// The number under `key` as Float (float32 values exactly).
    public func float(_ key: String) throws -> Float? {
        try typed(key, "a number") { v in if case .float32(let f) = v { return f }; return v.doubleValue.map(Float.init) }
    }
    public func bool(_ key: String) throws -> Bool? { try typed(key, "a bool", \.boolValue) }
    /// An array of strings under `key`.
    public func stringArray(_ key: String) throws -> [String]? {
        try typed(key, "an array of strings") { v in
            guard case .array(let t, let a) = v, t == .string else { return nil }
            return a.map { $0.stringValue ?? "" }
        }
    }
    /// An array of integers (any width, each fitting Int) under `key`.
    public func intArray(_ key: String) throws -> [Int]? {
        try typed(key, "an array of integers") { v in
            guard case .array(_, let a) = v else { return nil }
            var out: [Int] = []
            out.reserveCapacity(a.count)
            for e in a { guard let i = e.intValue else { return nil }; out.append(i) }
            return out
        }
    }
    /// An array of numbers under `key`, as Float (float32 values exactly).
    public func floatArray(_ key: String) throws -> [Float]? {
        try typed(key, "an array of numbers") { v in
            guard case .array(_, let a) = v else { return nil }
            var out: [Float] = []
            out.reserveCapacity(a.count)
            for e in a {
                if case .float32(let f) = e { out.append(f) } else if let d = e.doubleValue { out.append(Float(d)) } else { return nil }
            }
            return out
        }
    }

    private func required<T>(_ key: String, _ get: (String) throws -> T?) throws -> T {
        guard let v = try get(key) else {
            throw GGUFError(.missingKey, file: url.path, key: key, "required metadata key is absent")
        }
        return v
    }
    public func requireString(_ key: String) throws -> String { try required(key, string) }
    public func requireInt(_ key: String) throws -> Int { try required(key, int) }
    public func requireDouble(_ key: String) throws -> Double { try required(key, double) }
}

// MARK: - Storage and parsing

extension GGUFFile {
    /// The file's bytes: a read-only private mapping (unmapped on deinit) or an owned copy.
    final class Storage: @unchecked Sendable {
        let base: UnsafeRawPointer?
        let count: Int
        private let mapped: Bool
        var isMapped: Bool { mapped }

        init(mapping path: String) throws {
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else {
                throw GGUFError(.io, file: path, "cannot open: \(String(cString: strerror(errno)))")
            }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0 else {
                throw GGUFError(.io, file: path, "cannot stat: \(String(cString: strerror(errno)))")
            }
            guard (st.st_mode & S_IFMT) == S_IFREG else { throw GGUFError(.io, file: path, "not a regular file") }
            count = Int(st.st_size)
            mapped = true
            if count == 0 { base = nil; return }
            guard let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
                throw GGUFError(.io, file: path, "cannot map \(count) bytes: \(String(cString: strerror(errno)))")
            }
            base = UnsafeRawPointer(p)
        }

        init(copying bytes: [UInt8]) {
            count = bytes.count
            mapped = false
            if bytes.isEmpty { base = nil; return }
            let p = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 64)
            bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            base = UnsafeRawPointer(p)
        }

        deinit {
            guard let b = base else { return }
            if mapped { munmap(UnsafeMutableRawPointer(mutating: b), count) } else { b.deallocate() }
        }
    }

    /// Bounds-checked little-endian reads; every failure names what was being read.
    struct Cursor {
        let base: UnsafeRawPointer?
        let end: Int
        let file: String
        var pos = 0

        init(base: UnsafeRawPointer?, end: Int, file: String) { self.base = base; self.end = end; self.file = file }

        var remaining: Int { end - pos }

        mutating func need(_ n: Int, _ what: @autoclosure () -> String, key: String? = nil, tensor: String? = nil) throws {
            guard n <= remaining else {
                throw GGUFError(.truncated, file: file, key: key, tensor: tensor,
                                "file ends at byte \(end) while reading \(what()) (\(n) bytes needed at offset \(pos))")
            }
        }

        mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String, key: String? = nil, tensor: String? = nil) throws -> T {
            try need(MemoryLayout<T>.size, what(), key: key, tensor: tensor)
            let v = T(littleEndian: base!.loadUnaligned(fromByteOffset: pos, as: T.self))
            pos += MemoryLayout<T>.size
            return v
        }
        mutating func u32(_ what: @autoclosure () -> String, key: String? = nil, tensor: String? = nil) throws -> UInt32 {
            try load(UInt32.self, what(), key: key, tensor: tensor)
        }
        mutating func u64(_ what: @autoclosure () -> String, key: String? = nil, tensor: String? = nil) throws -> UInt64 {
            try load(UInt64.self, what(), key: key, tensor: tensor)
        }

        mutating func bytes(_ n: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
            try need(n, what())
            defer { pos += n }
            return UnsafeRawBufferPointer(start: n == 0 ? nil : base! + pos, count: n)
        }

        /// u64 length + UTF-8 bytes (invalid UTF-8 is repaired with U+FFFD, as Python's errors="replace").
        mutating func string(_ what: @autoclosure () -> String, key: String? = nil, tensor: String? = nil) throws -> String {
            let n = try u64("the length of \(what())", key: key, tensor: tensor)
            guard n <= UInt64(remaining) else {
                throw GGUFError(.truncated, file: file, key: key, tensor: tensor,
                                "\(what()) has length \(n) but only \(remaining) bytes are left in the file")
            }
            let b = try bytes(Int(n), what())
            return String(decoding: b, as: UTF8.self)
        }

        mutating func value(_ type: GGUFValueType, key: String, depth: Int) throws -> GGUFValue {
            let what = "the value of metadata '\(key)'"
            switch type {
            case .uint8: return .uint8(try load(UInt8.self, what, key: key))
            case .int8: return .int8(try load(Int8.self, what, key: key))
            case .uint16: return .uint16(try load(UInt16.self, what, key: key))
            case .int16: return .int16(try load(Int16.self, what, key: key))
            case .uint32: return .uint32(try load(UInt32.self, what, key: key))
            case .int32: return .int32(try load(Int32.self, what, key: key))
            case .uint64: return .uint64(try load(UInt64.self, what, key: key))
            case .int64: return .int64(try load(Int64.self, what, key: key))
            case .float32: return .float32(Float(bitPattern: try load(UInt32.self, what, key: key)))
            case .float64: return .float64(Double(bitPattern: try load(UInt64.self, what, key: key)))
            case .bool:
                let b = try load(UInt8.self, what, key: key)
                guard b <= 1 else { throw GGUFError(.badValueType, file: file, key: key, "bool byte is \(b), not 0 or 1") }
                return .bool(b == 1)
            case .string: return .string(try string(what, key: key))
            case .array:
                guard depth < GGUFFile.maxArrayNesting else {
                    throw GGUFError(.badCount, file: file, key: key, "arrays nested deeper than \(GGUFFile.maxArrayNesting)")
                }
                let rawType = try u32("the element type of array '\(key)'", key: key)
                guard let et = GGUFValueType(rawValue: rawType) else {
                    throw GGUFError(.badValueType, file: file, key: key, "array element type id \(rawType) is not a GGUF type (0...12)")
                }
                let n = try u64("the length of array '\(key)'", key: key)
                guard n <= UInt64(remaining / et.minimumSize) else {
                    throw GGUFError(.badCount, file: file, key: key,
                                    "array of \(n) \(et) cannot fit in the \(remaining) bytes left in the file")
                }
                var out: [GGUFValue] = []
                out.reserveCapacity(Int(n))
                for _ in 0..<Int(n) { out.append(try value(et, key: key, depth: depth + 1)) }
                return .array(et, out)
            }
        }
    }
}
