import Shared
import TestSupport
import Testing
@testable import Wire

/// Weight snapshots: chunking, BF16 rounding, CRCs, and the assembler's refusals.
@Suite struct WeightSnapshotTests {
    static let manifest = [
        TensorEntry(name: "model.embed_tokens.weight", shape: [100, 30], offsetElements: 0),
        TensorEntry(name: "model.layers.0.mlp.up_proj.weight", shape: [30, 40], offsetElements: 3000),
        TensorEntry(name: "model.norm.weight", shape: [30], offsetElements: 4200),
    ]
    static let count = 4230

    static func parameters(seed: UInt64 = 11) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        var p = (0..<count).map { _ in Float.random(in: -2...2, using: &rng) }
        // Values that stress conversion: tiny, huge, exact halfway cases for bf16 rounding, signed zero.
        p[0] = 0; p[1] = -0.0; p[2] = 1e-30; p[3] = 3e38; p[4] = Float(bitPattern: 0x3F80_8000)  // halfway, even below
        p[5] = Float(bitPattern: 0x3F81_8000)  // halfway, odd below -> rounds up
        return p
    }

    static func assemble(_ s: WeightSnapshot, order: [Int]) throws -> AssembledSnapshot {
        var a = SnapshotAssembler(version: s.version)
        for i in order {
            // Through the real codec, as on the wire.
            let env = try WireCodec.decode(WireCodec.encode(Envelope(sender: "learner", body: .snapshotChunk(s.chunk(i)))))
            guard case .snapshotChunk(let c) = env.body else { Issue.record("not a chunk"); continue }
            try a.accept(c)
        }
        return try a.finish()
    }

    @Test func f32RoundTripIsExactInAnyOrder() throws {
        let p = Self.parameters()
        let s = try WeightSnapshot(version: 3, parameters: p, manifest: Self.manifest, dtype: .f32, chunkBytes: 1000)
        #expect(s.totalBytes == Self.count * 4)
        #expect(s.nChunks == (Self.count * 4 + 999) / 1000)
        #expect(s.crc32 == CRC32.checksum(s.bytes), "combined chunk CRCs equal the one-pass CRC")
        var rng = SeededGenerator(seed: 5)
        let order = Array(0..<s.nChunks).shuffled(using: &rng)
        let out = try Self.assemble(s, order: order)
        #expect(out.version == 3)
        #expect(out.dtype == .f32)
        #expect(out.manifest == Self.manifest)
        #expect(out.parameters.map(\.bitPattern) == p.map(\.bitPattern), "F32 must be bit exact")
    }

    @Test func bf16RoundTripIsWithinRounding() throws {
        let p = Self.parameters()
        let s = try WeightSnapshot(version: 4, parameters: p, manifest: Self.manifest, dtype: .bf16, chunkBytes: 512)
        #expect(s.totalBytes == Self.count * 2)
        let out = try Self.assemble(s, order: Array((0..<s.nChunks).reversed()))
        // bf16 keeps 8 significant bits: round-to-nearest errs by at most half an ulp, 2^-8 relative.
        expectClose(out.parameters, p, atol: 1e-38, rtol: 1.0 / 256, "bf16 parameters")
        #expect(out.parameters[4].bitPattern == 0x3F80_0000, "halfway rounds to even (down)")
        #expect(out.parameters[5].bitPattern == 0x3F82_0000, "halfway rounds to even (up)")
        #expect(out.parameters[1].sign == .minus)
        // Round-to-nearest: no other bf16 value is closer than the one chosen.
        for (x, y) in zip(p, out.parameters) {
            let b = y.bitPattern >> 16
            let up = Float(bitPattern: (b + 1) << 16), down = Float(bitPattern: (b &- 1) << 16)
            // (A neighbour that is NaN, e.g. below +0, compares false and so never counts as closer.)
            #expect(!(abs(up - x) < abs(y - x)) && !(abs(down - x) < abs(y - x)), "\(x) -> \(y) is not nearest")
        }
    }

    /// A snapshot built from a source read a slice at a time (a BF16 model's frozen base) has the bytes and CRCs of
    /// one built from the whole buffer, whatever the slice size.
    @Test(arguments: [DType.f32, .bf16])
    func builtSliceBySliceEqualsBuiltFromTheWhole(_ dtype: DType) throws {
        let p = Self.parameters()
        let whole = try WeightSnapshot(version: 3, parameters: p, manifest: Self.manifest, dtype: dtype, chunkBytes: 1024)
        for slice in [1, 7, 1000, Self.count, 10 * Self.count] {
            var calls = 0
            let s = try WeightSnapshot(version: 3, elementCount: Self.count, manifest: Self.manifest, dtype: dtype,
                                       chunkBytes: 1024, sliceElements: slice) { start, count, dst in
                calls += 1
                for i in 0..<count { dst[i] = p[start + i] }
            }
            #expect(s.bytes == whole.bytes && s.chunkCRCs == whole.chunkCRCs && s.crc32 == whole.crc32, "slice \(slice), \(dtype)")
            #expect(dtype == .f32 ? calls == 1 : calls == (Self.count + min(slice, Self.count) - 1) / min(slice, Self.count))
        }
    }

    @Test func bf16SpecialValues() {
        #expect(BFloat16.toFloat(BFloat16.from(.infinity)) == .infinity)
        #expect(BFloat16.toFloat(BFloat16.from(-.infinity)) == -.infinity)
        #expect(BFloat16.toFloat(BFloat16.from(.nan)).isNaN)
        #expect(BFloat16.toFloat(BFloat16.from(Float(bitPattern: 0x7F80_0001))).isNaN, "signalling NaN stays NaN")
        #expect(BFloat16.toFloat(BFloat16.from(Float.greatestFiniteMagnitude)) == .infinity, "rounds past max to inf")
    }

    @Test func corruptByteIsDetected() throws {
        let s = try WeightSnapshot(version: 1, parameters: Self.parameters(), manifest: Self.manifest, chunkBytes: 4096)
        var a = SnapshotAssembler()
        var c = s.chunk(2)
        var d = Array(c.data)
        d[100] ^= 0x10
        c.data = ArraySlice(d)
        let err = #expect(throws: SnapshotError.self) { try a.accept(c) }
        #expect(err == .badChunkCRC(chunk: 2, got: CRC32.checksum(d), expected: s.chunkCRCs[2]))
        #expect(err?.description.contains("snapshot_chunk[2].crc32") == true)
        // The good chunk is still accepted afterwards.
        #expect(try a.accept(s.chunk(2)) == false)
    }

    @Test func missingChunkIsDetected() throws {
        let s = try WeightSnapshot(version: 1, parameters: Self.parameters(), manifest: Self.manifest, chunkBytes: 2048)
        var a = SnapshotAssembler(version: 1)
        for i in 0..<s.nChunks where i != 3 && i != 5 { #expect(try a.accept(s.chunk(i)) == false) }
        #expect(!a.isComplete)
        #expect(a.missingChunks == [3, 5])
        #expect(throws: SnapshotError.missingChunks([3, 5])) { try a.finish() }
        try a.accept(s.chunk(5))
        #expect(try a.accept(s.chunk(3)) == true)
        #expect(a.isComplete)
        #expect(try a.finish().parameters == Self.parameters())
    }

    @Test func assemblerRefusalsNameTheProblem() throws {
        let s = try WeightSnapshot(version: 7, parameters: Self.parameters(), manifest: Self.manifest, chunkBytes: 4000)
        var a = SnapshotAssembler(version: 7)
        try a.accept(s.chunk(1))
        #expect(throws: SnapshotError.duplicateChunk(1)) { try a.accept(s.chunk(1)) }

        let other = try WeightSnapshot(version: 8, parameters: Self.parameters(), manifest: Self.manifest, chunkBytes: 4000)
        #expect(throws: SnapshotError.wrongVersion(chunk: 0, got: 8, expected: 7)) { try a.accept(other.chunk(0)) }

        var shifted = s.chunk(2)
        shifted.offset += 4
        #expect(throws: SnapshotError.chunkOutOfRange(chunk: 2, detail: "offset 8004, expected 8000 (= index * chunk_bytes)")) {
            try a.accept(shifted)
        }
        var beyond = s.chunk(2)
        beyond.chunkIndex = 9
        beyond.offset = 36000
        #expect(throws: SnapshotError.chunkOutOfRange(chunk: 9, detail: "chunk_index 9 >= n_chunks 5")) { try a.accept(beyond) }

        var lying = s.chunk(3)
        lying.totalBytes += 4
        #expect(throws: SnapshotError.inconsistent(chunk: 3, field: "total_bytes", got: 16924, expected: 16920)) {
            try a.accept(lying)
        }

        // A whole-snapshot CRC that does not match the data is caught at finish().
        let t = try WeightSnapshot(version: 9, parameters: Self.parameters(), manifest: Self.manifest, chunkBytes: 8192)
        var b = SnapshotAssembler()
        for i in 0..<t.nChunks {
            var c = t.chunk(i)
            c.snapshotCRC32 ^= 1
            try b.accept(c)
        }
        #expect(throws: SnapshotError.badSnapshotCRC(got: t.crc32, expected: t.crc32 ^ 1)) { try b.finish() }

        // A manifest entry pointing past the buffer is refused on both sides.
        let bad = [TensorEntry(name: "lm_head.weight", shape: [10, 10], offsetElements: 4200)]
        #expect(throws: SnapshotError.manifestOutOfRange(tensor: "lm_head.weight", offsetElements: 4200, elements: 100,
                                                         bufferElements: 4230)) {
            try WeightSnapshot(version: 1, parameters: Self.parameters(), manifest: bad, chunkBytes: 4000)
        }
        #expect(throws: SnapshotError.invalidChunkSize(1001)) {
            try WeightSnapshot(version: 1, parameters: Self.parameters(), manifest: Self.manifest, chunkBytes: 1001)
        }
    }

    /// Found while writing the `weights` fuzz target (scripts/fuzz weights): one 8-byte chunk announcing a snapshot
    /// of 2^27 chunks made the assembler zero-fill 640 MB of per-chunk bookkeeping (10 GB at 2^31 chunks, within the
    /// 16 GiB default limit). It is refused before any allocation, naming n_chunks.
    @Test func tinyChunksOfAHugeSnapshotAreRefusedBeforeAllocating() throws {
        let data = ArraySlice([UInt8](repeating: 7, count: 8))
        let nChunks: UInt32 = 1 << 27
        let c = SnapshotChunk(version: 1, chunkIndex: 0, nChunks: nChunks, dtype: .f32, offset: 0, data: data,
                              crc32: CRC32.checksum(data), totalBytes: UInt64(nChunks) * 8,
                              manifest: [TensorEntry(name: "w", shape: [2], offsetElements: 0)],
                              chunkBytes: 8, snapshotCRC32: 0)
        var a = SnapshotAssembler()
        #expect(throws: SnapshotError.chunkOutOfRange(chunk: 0, detail: "n_chunks 134217728 exceeds the limit of 1048576 (chunk_bytes 8 is too small for total_bytes 1073741824)")) {
            try a.accept(c)
        }
        #expect(a.nChunks == nil, "nothing was allocated for the refused layout")
        // The limit itself is a valid layout.
        var atLimit = c
        atLimit.nChunks = SnapshotAssembler.maxChunks
        atLimit.totalBytes = UInt64(SnapshotAssembler.maxChunks) * 8
        var b = SnapshotAssembler()
        #expect(try b.accept(atLimit) == false)
        #expect(b.nChunks == Int(SnapshotAssembler.maxChunks))
    }

    @Test func separateDataFramePathRoundTrips() throws {
        let p = Self.parameters()
        let s = try WeightSnapshot(version: 6, parameters: p, manifest: Self.manifest, dtype: .f32, chunkBytes: 3000)
        var a = SnapshotAssembler(version: 6)
        for i in (0..<s.nChunks).reversed() {
            let header = try WireCodec.decode(WireCodec.encode(Envelope(sender: "learner", body: .snapshotChunk(s.chunkHeader(i)))))
            guard case .snapshotChunk(let c) = header.body else { Issue.record("not a chunk"); return }
            #expect(c.dataInNextFrame && c.data.isEmpty)
            // A header without its data frame, or inline data with a separate frame, is refused.
            var probe = a
            #expect(throws: SnapshotError.self) { try probe.accept(c) }
            #expect(throws: SnapshotError.self) { try probe.accept(s.chunk(i), data: UnsafeRawBufferPointer(start: nil, count: 0)) }
            let data = Array(s.chunkData(i))
            try data.withUnsafeBytes { raw in _ = try a.accept(c, data: raw) }
        }
        #expect(try a.finish().parameters.map(\.bitPattern) == p.map(\.bitPattern))
        // The codec refuses a header that claims its data follows but also carries data.
        var bad = s.chunk(1)
        bad.dataInNextFrame = true
        #expect(throws: WireError.invalidValue(field: "snapshot_chunk.data", reason: "has 3000 bytes although data_in_next_frame is set")) {
            try WireCodec.decode(WireCodec.encode(Envelope(sender: "learner", body: .snapshotChunk(bad))))
        }
    }

    /// The kind travels with every chunk (through the codec) and comes out of the assembler; a chunk of another
    /// kind with the same version and sizes (a full snapshot's, while the adapters are assembled) is refused.
    @Test func kindIsCarriedAndAChunkOfAnotherKindIsRefused() throws {
        let p = Self.parameters()
        let adapters = try WeightSnapshot(version: 3, parameters: p, manifest: Self.manifest, chunkBytes: 4096, kind: .adapter)
        let full = try WeightSnapshot(version: 3, parameters: p, manifest: Self.manifest, chunkBytes: 4096)
        let a = try Self.assemble(adapters, order: Array(0..<adapters.nChunks).reversed())
        #expect(a.kind == .adapter && a.parameters == p)
        #expect(adapters.notice.adapter && !full.notice.adapter)
        var asm = SnapshotAssembler(version: 3)
        try asm.accept(adapters.chunk(0))
        #expect(throws: SnapshotError.wrongKind(chunk: 1, got: .full, expected: .adapter)) { try asm.accept(full.chunk(1)) }
        #expect(SnapshotError.wrongKind(chunk: 1, got: .full, expected: .adapter).description.contains("snapshot_chunk[1].adapter/frozen_base"))
    }

    @Test func noticeMatchesSnapshot() throws {
        let s = try WeightSnapshot(version: 2, parameters: Self.parameters(), manifest: Self.manifest, dtype: .bf16,
                                   chunkBytes: 1024)
        let n = s.notice
        #expect(n.version == 2 && n.totalBytes == UInt64(s.totalBytes) && n.nChunks == UInt32(s.nChunks))
        #expect(n.crc32 == s.crc32 && n.dtype == .bf16 && n.chunkBytes == 1024)
        #expect(s.chunk(0).manifest == Self.manifest && s.chunk(1).manifest.isEmpty)
        let last = s.chunk(s.nChunks - 1)
        #expect(last.data.count == s.totalBytes - (s.nChunks - 1) * 1024)
    }
}
