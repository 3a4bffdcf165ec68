import Shared

/// Why a weight snapshot could not be built or assembled. Every case names the chunk/field/tensor.
public enum SnapshotError: Error, Equatable, CustomStringConvertible, Sendable {
    case invalidChunkSize(Int)
    case unsupportedDType(DType)
    /// A manifest entry does not fit in the flat buffer (or overlaps the end, or its shape overflows).
    case manifestOutOfRange(tensor: String, offsetElements: UInt64, elements: UInt64?, bufferElements: Int)
    case wrongVersion(chunk: UInt32, got: UInt64, expected: UInt64)
    /// A header field differs from the one the first accepted chunk announced.
    case inconsistent(chunk: UInt32, field: String, got: UInt64, expected: UInt64)
    /// The chunk's `adapter` / `frozen_base` says it belongs to another kind of snapshot than the one assembled.
    case wrongKind(chunk: UInt32, got: SnapshotKind, expected: SnapshotKind)
    case chunkOutOfRange(chunk: UInt32, detail: String)
    case badChunkCRC(chunk: UInt32, got: UInt32, expected: UInt32)
    case duplicateChunk(UInt32)
    case tooLarge(totalBytes: UInt64, limit: UInt64)
    /// `finish()` before every chunk arrived.
    case missingChunks([UInt32])
    /// Chunk 0 carried no manifest although the snapshot has elements.
    case missingManifest
    /// Every chunk's CRC matched but the whole-snapshot CRC does not.
    case badSnapshotCRC(got: UInt32, expected: UInt32)

    public var description: String {
        switch self {
        case .invalidChunkSize(let n):
            "snapshot chunk_bytes \(n) must be a positive multiple of 4 and at most 64 MB"
        case .unsupportedDType(let d): "snapshot dtype \(d) is not supported (f32 or bf16)"
        case let .manifestOutOfRange(t, off, n, total):
            "snapshot manifest tensor '\(t)': elements [\(off), \(off) + \(n.map(String.init) ?? "overflow")) exceed the buffer of \(total) elements"
        case let .wrongVersion(c, got, expected):
            "snapshot_chunk[\(c)].version: got \(got), assembling version \(expected)"
        case let .inconsistent(c, f, got, expected):
            "snapshot_chunk[\(c)].\(f): got \(got), earlier chunks said \(expected)"
        case let .wrongKind(c, got, expected):
            "snapshot_chunk[\(c)].adapter/frozen_base: a chunk of a \(got) snapshot, assembling a \(expected) one"
        case let .chunkOutOfRange(c, detail): "snapshot_chunk[\(c)]: \(detail)"
        case let .badChunkCRC(c, got, expected):
            "snapshot_chunk[\(c)].crc32: data hashes to \(hex(got)), chunk says \(hex(expected))"
        case .duplicateChunk(let c): "snapshot_chunk[\(c)]: already received"
        case let .tooLarge(total, limit): "snapshot total_bytes \(total) exceeds the limit of \(limit)"
        case .missingChunks(let m):
            "snapshot incomplete: \(m.count) chunk(s) missing, first \(m.prefix(8).map(String.init).joined(separator: ", "))"
        case .missingManifest: "snapshot manifest: missing (chunk 0 must list the tensors)"
        case let .badSnapshotCRC(got, expected):
            "snapshot crc32: assembled bytes hash to \(hex(got)), notice says \(hex(expected))"
        }
    }
}

private func hex(_ x: UInt32) -> String { "0x" + String(x, radix: 16) }

/// One immutable version of the policy weights, serialised for the wire (zguide "Clone" data plane).
///
/// The learner builds one per version from its flat Float parameter buffer (a copy, so training can go on
/// while actors fetch), publishes `notice`, and answers each `SnapshotRequest` with `chunk(i)`s. Chunk i covers
/// bytes [i * chunkBytes, min((i + 1) * chunkBytes, totalBytes)) of `bytes`, little-endian F32 or BF16.
public struct WeightSnapshot: Sendable {
    public let version: UInt64
    public let dtype: DType
    /// Full weights, one version's LoRA adapters, or the frozen base of a LoRA run (version 0).
    public let kind: SnapshotKind
    public let manifest: [TensorEntry]
    /// Number of parameters.
    public let elementCount: Int
    public let chunkBytes: Int
    /// The serialised buffer (elementCount * dtype.byteWidth bytes).
    public let bytes: [UInt8]
    /// CRC-32 of each chunk's bytes.
    public let chunkCRCs: [UInt32]
    /// CRC-32 of `bytes`.
    public let crc32: UInt32

    public var nChunks: Int { chunkCRCs.count }
    public var totalBytes: Int { bytes.count }

    /// - Parameters:
    ///   - parameters: the flat parameter buffer  // (elementCount,)
    ///   - manifest: where each tensor lives in `parameters` (validated to fit)
    ///   - chunkBytes: 1–4 MB in production; any positive multiple of 4 up to 64 MB is accepted (tests use tiny ones)
    public init(version: UInt64, parameters: UnsafeBufferPointer<Float>, manifest: [TensorEntry],
                dtype: DType = .f32, chunkBytes: Int = 4 << 20, kind: SnapshotKind = .full) throws(SnapshotError) {
        try self.init(version: version, elementCount: parameters.count, manifest: manifest, dtype: dtype,
                      chunkBytes: chunkBytes, kind: kind) { start, count, dst in
            dst.update(from: parameters.baseAddress! + start, count: count)
        }
    }

    /// Built from a source that writes the flat F32 values range by range — `fill(start, count, dst)` writes
    /// elements [start, start + count) to dst — through a scratch of `sliceElements` floats, so the source need
    /// not be one F32 buffer (a BF16 model's weights are widened a slice at a time, never into a whole F32 copy).
    public init(version: UInt64, elementCount: Int, manifest: [TensorEntry], dtype: DType = .f32,
                chunkBytes: Int = 4 << 20, kind: SnapshotKind = .full, sliceElements: Int = 1 << 20,
                fill: (_ start: Int, _ count: Int, _ dst: UnsafeMutablePointer<Float>) -> Void) throws(SnapshotError) {
        guard chunkBytes > 0, chunkBytes % 4 == 0, chunkBytes <= 64 << 20 else { throw .invalidChunkSize(chunkBytes) }
        guard dtype == .f32 || dtype == .bf16 else { throw .unsupportedDType(dtype) }
        try Self.validate(manifest: manifest, elementCount: elementCount)
        self.version = version
        self.dtype = dtype
        self.kind = kind
        self.manifest = manifest
        self.elementCount = elementCount
        self.chunkBytes = chunkBytes
        let total = elementCount * dtype.byteWidth
        self.bytes = [UInt8](unsafeUninitializedCapacity: total) { buf, n in
            guard let base = buf.baseAddress else { n = 0; return }
            switch dtype {
            case .bf16:
                let out = UnsafeMutableRawPointer(base).bindMemory(to: UInt16.self, capacity: elementCount)
                let slice = max(1, min(sliceElements, elementCount))
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: slice)
                defer { scratch.deallocate() }
                var start = 0
                while start < elementCount {
                    let count = min(slice, elementCount - start)
                    fill(start, count, scratch)
                    BFloat16.encode(out + start, scratch, count: count)
                    start += count
                }
            default:
                // F32: the source writes straight into the snapshot's bytes.
                fill(0, elementCount, UnsafeMutableRawPointer(base).bindMemory(to: Float.self, capacity: elementCount))
            }
            n = total
        }
        var crcs: [UInt32] = []
        var whole: UInt32 = 0
        bytes.withUnsafeBytes { raw in
            var off = 0
            while off < total {
                let n = min(chunkBytes, total - off)
                let c = CRC32.checksum(UnsafeRawBufferPointer(rebasing: raw[off..<(off + n)]))
                crcs.append(c)
                whole = CRC32.combine(whole, c, lengthB: n)
                off += n
            }
        }
        self.chunkCRCs = crcs
        self.crc32 = whole
    }

    public init(version: UInt64, parameters: [Float], manifest: [TensorEntry], dtype: DType = .f32,
                chunkBytes: Int = 4 << 20, kind: SnapshotKind = .full) throws(SnapshotError) {
        let r: Result<WeightSnapshot, SnapshotError> = parameters.withUnsafeBufferPointer { p in
            do throws(SnapshotError) {
                return .success(try WeightSnapshot(version: version, parameters: p, manifest: manifest,
                                                   dtype: dtype, chunkBytes: chunkBytes, kind: kind))
            } catch { return .failure(error) }
        }
        self = try r.get()
    }

    static func validate(manifest: [TensorEntry], elementCount: Int) throws(SnapshotError) {
        if manifest.isEmpty && elementCount > 0 { throw .missingManifest }
        for t in manifest {
            let n = t.elementCount
            let (end, o) = t.offsetElements.addingReportingOverflow(n ?? 0)
            guard n != nil, !o, end <= UInt64(elementCount) else {
                throw .manifestOutOfRange(tensor: t.name, offsetElements: t.offsetElements, elements: n,
                                          bufferElements: elementCount)
            }
        }
    }

    /// The small PUB message announcing this version.
    public var notice: WeightNotice {
        WeightNotice(version: version, totalBytes: UInt64(totalBytes), nChunks: UInt32(nChunks), dtype: dtype,
                     crc32: crc32, chunkBytes: UInt32(chunkBytes), adapter: kind == .adapter)
    }

    /// Chunk `index` (0..<nChunks) with its bytes inside the message; the data shares this snapshot's storage
    /// (but protobuf-c copies it once when the envelope is encoded). Chunk 0 carries the manifest.
    public func chunk(_ index: Int) -> SnapshotChunk {
        var c = chunkHeader(index)
        c.data = chunkData(index)
        c.dataInNextFrame = false
        return c
    }

    /// Zero-copy path: chunk `index` without its bytes (`dataInNextFrame` set). Send the encoded envelope as one
    /// frame and `chunkData(index)` as the next frame of the same multipart message (zero-copy).
    public func chunkHeader(_ index: Int) -> SnapshotChunk {
        precondition(index >= 0 && index < nChunks, "chunk \(index) out of 0..<\(nChunks)")
        return SnapshotChunk(version: version, chunkIndex: UInt32(index), nChunks: UInt32(nChunks), dtype: dtype,
                             offset: UInt64(index * chunkBytes), data: [], crc32: chunkCRCs[index],
                             totalBytes: UInt64(totalBytes), manifest: index == 0 ? manifest : [],
                             chunkBytes: UInt32(chunkBytes), snapshotCRC32: crc32, dataInNextFrame: true, kind: kind)
    }

    /// The bytes of chunk `index` (a slice of `bytes`, no copy).
    public func chunkData(_ index: Int) -> ArraySlice<UInt8> {
        precondition(index >= 0 && index < nChunks, "chunk \(index) out of 0..<\(nChunks)")
        let off = index * chunkBytes
        return bytes[off..<min(off + chunkBytes, totalBytes)]
    }
}

/// A fully received snapshot: the flat parameters as Float plus the manifest.
public struct AssembledSnapshot: Sendable {
    public let version: UInt64
    public let dtype: DType
    public let kind: SnapshotKind
    public let manifest: [TensorEntry]
    public let parameters: [Float]  // (elementCount,)
}

/// Collects the chunks of one snapshot version, in any order, and yields the Float buffer once complete.
///
/// Each chunk is checked before it is stored: version, header consistency with the first chunk, offset and
/// length (chunk i must be exactly [i * chunkBytes, ...)), CRC-32, duplicates. On completion the whole-snapshot
/// CRC (combined from the chunk CRCs, no second pass) and the manifest are checked.
public struct SnapshotAssembler: Sendable {
    /// The version being assembled (fixed by the first chunk when created with nil).
    public private(set) var version: UInt64?
    public let maxTotalBytes: UInt64

    private struct Header: Equatable {
        var nChunks: UInt32, dtype: DType, totalBytes: UInt64, chunkBytes: UInt32, snapshotCRC32: UInt32
        var kind: SnapshotKind
    }
    private var header: Header?
    /// The serialised bytes as they arrive, in Float-sized storage: for F32 this IS the result (no final copy);
    /// for BF16 it holds the 2-byte values and `finish` widens them.
    private var storage: [Float] = []
    private var received: [Bool] = []
    private var crcs: [UInt32] = []
    private var receivedCount = 0
    private var manifest: [TensorEntry]?

    /// - Parameters:
    ///   - version: the version expected (from the WeightNotice), or nil to take the first chunk's
    ///   - maxTotalBytes: refuse snapshots larger than this (the buffer is allocated on the first chunk)
    /// Most chunks one snapshot may have: 2^20 (16 GiB in 1 MB chunks is 16 Ki; 4 TiB at the 4 MB production size).
    public static let maxChunks: UInt32 = 1 << 20

    public init(version: UInt64? = nil, maxTotalBytes: UInt64 = 16 << 30) {
        self.version = version
        self.maxTotalBytes = maxTotalBytes
    }

    public var nChunks: Int? { header.map { Int($0.nChunks) } }
    public var receivedChunks: Int { receivedCount }
    public var isComplete: Bool { header != nil && receivedCount == received.count }
    /// Indices not yet received (all unknown before the first chunk: empty then).
    public var missingChunks: [UInt32] {
        received.indices.filter { !received[$0] }.map { UInt32($0) }
    }

    /// Stores one chunk; returns true when this completed the snapshot.
    /// - Parameter data: the chunk's bytes when they came as a separate frame (`c.dataInNextFrame`); they are
    ///   checked and copied once, straight into the assembly buffer.
    @discardableResult
    public mutating func accept(_ c: SnapshotChunk, data: UnsafeRawBufferPointer? = nil) throws(SnapshotError) -> Bool {
        if let data {
            guard c.dataInNextFrame else {
                throw .chunkOutOfRange(chunk: c.chunkIndex, detail: "separate data given but data_in_next_frame is not set")
            }
            return try accept(c, bytes: data)
        }
        guard !c.dataInNextFrame else {
            throw .chunkOutOfRange(chunk: c.chunkIndex, detail: "data_in_next_frame is set but no data frame was given")
        }
        let r: Result<Bool, SnapshotError> = c.data.withUnsafeBytes { raw in
            do throws(SnapshotError) { return .success(try accept(c, bytes: raw)) } catch { return .failure(error) }
        }
        return try r.get()
    }

    private mutating func accept(_ c: SnapshotChunk, bytes data: UnsafeRawBufferPointer) throws(SnapshotError) -> Bool {
        let i = c.chunkIndex
        if let v = version, v != c.version { throw .wrongVersion(chunk: i, got: c.version, expected: v) }
        let h = Header(nChunks: c.nChunks, dtype: c.dtype, totalBytes: c.totalBytes, chunkBytes: c.chunkBytes,
                       snapshotCRC32: c.snapshotCRC32, kind: c.kind)
        if let old = header {
            if old.kind != h.kind { throw .wrongKind(chunk: i, got: h.kind, expected: old.kind) }
            if old.nChunks != h.nChunks { throw .inconsistent(chunk: i, field: "n_chunks", got: UInt64(h.nChunks), expected: UInt64(old.nChunks)) }
            if old.dtype != h.dtype { throw .inconsistent(chunk: i, field: "dtype", got: UInt64(h.dtype.rawValue), expected: UInt64(old.dtype.rawValue)) }
            if old.totalBytes != h.totalBytes { throw .inconsistent(chunk: i, field: "total_bytes", got: h.totalBytes, expected: old.totalBytes) }
            if old.chunkBytes != h.chunkBytes { throw .inconsistent(chunk: i, field: "chunk_bytes", got: UInt64(h.chunkBytes), expected: UInt64(old.chunkBytes)) }
            if old.snapshotCRC32 != h.snapshotCRC32 { throw .inconsistent(chunk: i, field: "snapshot_crc32", got: UInt64(h.snapshotCRC32), expected: UInt64(old.snapshotCRC32)) }
        } else {
            try Self.validate(header: h, chunk: i, limit: maxTotalBytes)
        }
        guard i < h.nChunks else { throw .chunkOutOfRange(chunk: i, detail: "chunk_index \(i) >= n_chunks \(h.nChunks)") }
        let expectedOffset = UInt64(i) * UInt64(h.chunkBytes)
        guard c.offset == expectedOffset else {
            throw .chunkOutOfRange(chunk: i, detail: "offset \(c.offset), expected \(expectedOffset) (= index * chunk_bytes)")
        }
        let expectedLen = min(UInt64(h.chunkBytes), h.totalBytes - expectedOffset)
        guard UInt64(data.count) == expectedLen else {
            throw .chunkOutOfRange(chunk: i, detail: "\(data.count) data bytes at offset \(c.offset), expected \(expectedLen) (total_bytes \(h.totalBytes))")
        }
        let crc = CRC32.checksum(data)
        guard crc == c.crc32 else { throw .badChunkCRC(chunk: i, got: crc, expected: c.crc32) }
        if header == nil {
            // First valid chunk: fix the layout and allocate the buffer.
            header = h
            version = c.version
            // Not zero-filled (a pass over up to GBs for nothing): every byte is written before `finish` returns
            // it, because finish requires every chunk and the chunks tile [0, total_bytes) exactly. The tail
            // padding past total_bytes (BF16 with an odd count) is zeroed so the array is fully initialised.
            let words = (Int(h.totalBytes) + 3) / 4
            storage = [Float](unsafeUninitializedCapacity: words) { buf, n in
                if words > 0 { buf[words - 1] = 0 }
                n = words
            }
            received = [Bool](repeating: false, count: Int(h.nChunks))
            crcs = [UInt32](repeating: 0, count: Int(h.nChunks))
        }
        guard !received[Int(i)] else { throw .duplicateChunk(i) }
        if i == 0 {
            if c.manifest.isEmpty && h.totalBytes > 0 { throw .missingManifest }
            try WeightSnapshot.validate(manifest: c.manifest, elementCount: Int(h.totalBytes) / h.dtype.byteWidth)
            manifest = c.manifest
        } else if !c.manifest.isEmpty {
            throw .chunkOutOfRange(chunk: i, detail: "manifest must only be sent in chunk 0")
        }
        let off = Int(c.offset)
        storage.withUnsafeMutableBytes { dst in
            if data.count > 0 { (dst.baseAddress! + off).copyMemory(from: data.baseAddress!, byteCount: data.count) }
        }
        received[Int(i)] = true
        crcs[Int(i)] = crc
        receivedCount += 1
        return isComplete
    }

    private static func validate(header h: Header, chunk i: UInt32, limit: UInt64) throws(SnapshotError) {
        guard h.dtype == .f32 || h.dtype == .bf16 else { throw .unsupportedDType(h.dtype) }
        guard h.totalBytes <= limit else { throw .tooLarge(totalBytes: h.totalBytes, limit: limit) }
        guard h.totalBytes % UInt64(h.dtype.byteWidth) == 0 else {
            throw .chunkOutOfRange(chunk: i, detail: "total_bytes \(h.totalBytes) is not a multiple of the \(h.dtype) element size")
        }
        guard h.chunkBytes > 0, h.chunkBytes % 4 == 0, h.chunkBytes <= 64 << 20 else { throw .invalidChunkSize(Int(h.chunkBytes)) }
        let expectedChunks = (h.totalBytes + UInt64(h.chunkBytes) - 1) / UInt64(h.chunkBytes)
        guard UInt64(h.nChunks) == expectedChunks else {
            throw .chunkOutOfRange(chunk: i, detail: "n_chunks \(h.nChunks) but total_bytes \(h.totalBytes) / chunk_bytes \(h.chunkBytes) needs \(expectedChunks)")
        }
        // The per-chunk bookkeeping (5 bytes a chunk, zero-filled at once) must stay small: one 8-byte chunk announcing
        // 16 GiB in 2^31 chunks of 8 bytes made the actor fill 10 GB before a second chunk arrived.
        guard h.nChunks <= Self.maxChunks else {
            throw .chunkOutOfRange(chunk: i, detail: "n_chunks \(h.nChunks) exceeds the limit of \(Self.maxChunks) (chunk_bytes \(h.chunkBytes) is too small for total_bytes \(h.totalBytes))")
        }
    }

    /// The assembled snapshot; throws `missingChunks` when incomplete, `badSnapshotCRC` when the whole does not match.
    public func finish() throws(SnapshotError) -> AssembledSnapshot {
        guard let h = header, let version else { throw .missingChunks([]) }
        guard isComplete else { throw .missingChunks(missingChunks) }
        var whole: UInt32 = 0
        for (i, c) in crcs.enumerated() {
            let len = min(Int(h.chunkBytes), Int(h.totalBytes) - i * Int(h.chunkBytes))
            whole = CRC32.combine(whole, c, lengthB: len)
        }
        guard whole == h.snapshotCRC32 else { throw .badSnapshotCRC(got: whole, expected: h.snapshotCRC32) }
        let count = Int(h.totalBytes) / h.dtype.byteWidth
        guard let manifest else { throw .missingManifest }
        guard h.dtype == .bf16 else {
            // F32: the assembly buffer already is the parameter array (shared, not copied).
            return AssembledSnapshot(version: version, dtype: h.dtype, kind: h.kind, manifest: manifest, parameters: storage)
        }
        let params = [Float](unsafeUninitializedCapacity: count) { out, n in
            storage.withUnsafeBytes { raw in
                guard let src = raw.baseAddress, let dst = out.baseAddress else { return }
                BFloat16.decode(dst, src.assumingMemoryBound(to: UInt16.self), count: count)
            }
            n = count
        }
        return AssembledSnapshot(version: version, dtype: h.dtype, kind: h.kind, manifest: manifest, parameters: params)
    }
}
