import Foundation
import GGUF
import Testing
import TestSupport

/// Builds GGUF images field by field (little-endian), so each test can break exactly one thing.
struct GGUFImage {
    struct Tensor { var name: String; var dims: [UInt64]; var type: UInt32; var offset: UInt64 }
    var magic: [UInt8] = Array("GGUF".utf8)
    var version: UInt32 = 3
    var tensorCount: UInt64? = nil      // nil = tensors.count
    var kvCount: UInt64? = nil          // nil = kvs.count
    var kvs: [[UInt8]] = []             // each: key + type + value, already encoded
    var tensors: [Tensor] = []
    var alignment = 32
    var data: [UInt8] = []

    static func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    static func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    static func str(_ s: String) -> [UInt8] { u64(UInt64(s.utf8.count)) + Array(s.utf8) }
    static func kv(_ key: String, type: UInt32, _ value: [UInt8]) -> [UInt8] { str(key) + u32(type) + value }

    func bytes() -> [UInt8] {
        var b = magic + Self.u32(version) + Self.u64(tensorCount ?? UInt64(tensors.count)) + Self.u64(kvCount ?? UInt64(kvs.count))
        for kv in kvs { b += kv }
        for t in tensors {
            b += Self.str(t.name) + Self.u32(UInt32(t.dims.count))
            for d in t.dims { b += Self.u64(d) }
            b += Self.u32(t.type) + Self.u64(t.offset)
        }
        while b.count % alignment != 0 { b.append(0) }
        return b + data
    }

    /// A valid file: two F32 tensors of 4 and 8 elements, aligned at 0 and 32.
    static func valid() -> GGUFImage {
        var g = GGUFImage()
        g.kvs = [kv("general.architecture", type: 8, str("llama")), kv("x.count", type: 4, u32(7))]
        g.tensors = [Tensor(name: "a", dims: [4], type: 0, offset: 0), Tensor(name: "b", dims: [4, 2], type: 0, offset: 32)]
        g.data = (0..<16).flatMap { u32(Float($0).bitPattern) } + [UInt8](repeating: 0, count: 0)
        g.data = Array(g.data[0..<16]) + [UInt8](repeating: 0, count: 16) + Array(g.data[16..<48])
        return g
    }
}

private func expectError(_ kind: GGUFError.Kind, key: String? = nil, tensor: String? = nil, mentioning: String? = nil,
                         _ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
    let url = URL(fileURLWithPath: "/virtual/bad.gguf")
    do {
        _ = try GGUFFile(bytes: bytes, url: url)
        Issue.record("expected \(kind) error, the file was accepted", sourceLocation: sourceLocation)
    } catch let e as GGUFError {
        #expect(e.kind == kind, "\(e)", sourceLocation: sourceLocation)
        #expect(e.key == key, "\(e)", sourceLocation: sourceLocation)
        #expect(e.tensor == tensor, "\(e)", sourceLocation: sourceLocation)
        #expect(e.description.contains("/virtual/bad.gguf"), sourceLocation: sourceLocation)
        if let m = mentioning { #expect(e.description.contains(m), "\(e)", sourceLocation: sourceLocation) }
    } catch {
        Issue.record("unexpected error type \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct GGUFBadInputTests {
    @Test func theBuilderWritesAValidFile() throws {
        let f = try GGUFFile(bytes: GGUFImage.valid().bytes())
        #expect(f.tensors.map(\.name) == ["a", "b"])
        #expect(try f.floats("a") == [0, 1, 2, 3])
        #expect(try f.floats("b") == (4..<12).map(Float.init))
        #expect(try f.string("general.architecture") == "llama" && f.int("x.count") == 7)
    }

    @Test func everyTruncationIsAClearError() throws {
        // Cut the gguf-py-written fixture at every length short of its last tensor's end: never accepted, never
        // a crash; always a GGUFError.
        let full = [UInt8](try Data(contentsOf: Fixtures.url("gguf/metadata.gguf")))
        let f = try GGUFFile(bytes: full)
        let lastEnd = f.dataOffset + f.tensors.map { $0.offset + $0.byteCount }.max()!
        for n in 0..<lastEnd {
            #expect(throws: GGUFError.self, "prefix of \(n) bytes") { _ = try GGUFFile(bytes: Array(full[0..<n])) }
        }
        expectError(.truncated, mentioning: "magic", Array(full[0..<3]))
        expectError(.dataPastEnd, tensor: "b", mentioning: "past the end", Array(full[0..<(lastEnd - 1)]))
    }

    @Test func wrongMagicAndVersions() {
        var g = GGUFImage.valid()
        g.magic = Array("GGML".utf8)
        expectError(.badMagic, mentioning: "GGML", g.bytes())
        for v: UInt32 in [0, 1, 4, 0x0300_0000] {
            var h = GGUFImage.valid()
            h.version = v
            expectError(.unsupportedVersion, mentioning: "version \(v)", h.bytes())
        }
        var be = GGUFImage.valid()
        be.version = 0x0300_0000
        expectError(.unsupportedVersion, mentioning: "big-endian", be.bytes())
        var v2 = GGUFImage.valid()
        v2.version = 2
        #expect((try? GGUFFile(bytes: v2.bytes()))?.version == 2)
    }

    @Test func tensorDataPastTheEnd() {
        var g = GGUFImage.valid()
        g.tensors[1].offset = 64
        expectError(.dataPastEnd, tensor: "b", g.bytes())
        var h = GGUFImage.valid()
        h.tensors[1].offset = UInt64.max - 31  // aligned, but offset + size overflows
        expectError(.dataPastEnd, tensor: "b", h.bytes())
    }

    @Test func misalignedOffset() {
        var g = GGUFImage.valid()
        g.tensors[1].offset = 16
        expectError(.misalignedOffset, tensor: "b", mentioning: "alignment 32", g.bytes())
    }

    @Test func overlappingTensors() {
        var g = GGUFImage.valid()
        g.tensors[0].dims = [12]  // 48 bytes from 0 runs into b at 32
        expectError(.overlappingTensors, tensor: "b", mentioning: "'a'", g.bytes())
    }

    @Test func absurdDimensionsInATinyFile() {
        // Each of these is a ~100-byte file; rejected from the header alone, with no allocation of the claimed size.
        var g = GGUFImage.valid()
        g.tensors[1].dims = [1 << 30, 1 << 30]  // 2^60 floats: 4 EiB
        expectError(.dataPastEnd, tensor: "b", g.bytes())
        g.tensors[1].dims = [1 << 40, 1 << 40]
        expectError(.badShape, tensor: "b", mentioning: "overflows", g.bytes())
        g.tensors[1].dims = [UInt64.max]
        expectError(.badShape, tensor: "b", g.bytes())
        g.tensors[1].dims = [1, 1, 1, 1, 1]
        expectError(.badShape, tensor: "b", mentioning: "5 dimensions", g.bytes())
        var q = GGUFImage.valid()
        q.tensors[1].type = 2      // Q4_0 with a row of 4 (blocks are 32)
        expectError(.badShape, tensor: "b", mentioning: "block size 32", q.bytes())
        #expect(GGUFImage.valid().bytes().count < 300)
    }

    @Test func absurdCountsInATinyFile() {
        var g = GGUFImage.valid()
        g.tensorCount = UInt64.max
        expectError(.badCount, mentioning: "tensor count", g.bytes())
        g = GGUFImage.valid()
        g.kvCount = 1 << 40
        expectError(.badCount, mentioning: "metadata count", g.bytes())
        g = GGUFImage.valid()
        g.kvs.append(GGUFImage.kv("huge.array", type: 9, GGUFImage.u32(4) + GGUFImage.u64(1 << 50)))
        expectError(.badCount, key: "huge.array", mentioning: "array of 1125899906842624", g.bytes())
        g = GGUFImage.valid()
        g.kvs.append(GGUFImage.kv("huge.strings", type: 9, GGUFImage.u32(8) + GGUFImage.u64(1 << 20)))
        expectError(.badCount, key: "huge.strings", g.bytes())
        g = GGUFImage.valid()
        g.kvs.append(GGUFImage.kv("huge.string", type: 8, GGUFImage.u64(1 << 60)))
        expectError(.truncated, key: "huge.string", mentioning: "length 1152921504606846976", g.bytes())
        g = GGUFImage.valid()
        g.kvs.append(GGUFImage.u64(1 << 62) + Array("k".utf8))  // a key whose length exceeds the file
        expectError(.truncated, mentioning: "metadata key #2", g.bytes())
    }

    @Test func duplicateNames() {
        var g = GGUFImage.valid()
        g.tensors[1].name = "a"
        expectError(.duplicateTensor, tensor: "a", mentioning: "twice", g.bytes())
        var h = GGUFImage.valid()
        h.kvs.append(GGUFImage.kv("x.count", type: 4, GGUFImage.u32(8)))
        expectError(.duplicateKey, key: "x.count", mentioning: "twice", h.bytes())
    }

    @Test func badTypesAndValues() {
        var g = GGUFImage.valid()
        g.kvs.append(GGUFImage.kv("bad.type", type: 13, []))
        expectError(.badValueType, key: "bad.type", mentioning: "13", g.bytes())
        g = GGUFImage.valid()
        g.kvs.append(GGUFImage.kv("bad.elem", type: 9, GGUFImage.u32(42) + GGUFImage.u64(1)))
        expectError(.badValueType, key: "bad.elem", mentioning: "42", g.bytes())
        g = GGUFImage.valid()
        g.kvs.append(GGUFImage.kv("bad.bool", type: 7, [2]))
        expectError(.badValueType, key: "bad.bool", g.bytes())
        g = GGUFImage.valid()
        var nested: [UInt8] = []
        for _ in 0..<20 { nested += GGUFImage.u32(9) + GGUFImage.u64(1) }  // array of array of ... 20 deep
        g.kvs.append(GGUFImage.kv("deep", type: 9, nested + GGUFImage.u32(4) + GGUFImage.u64(0)))
        expectError(.badCount, key: "deep", mentioning: "nested", g.bytes())
        g = GGUFImage.valid()
        g.tensors[0].type = 4  // Q4_2, removed from ggml
        expectError(.unknownTensorType, tensor: "a", mentioning: "type id 4", g.bytes())
    }

    @Test func badAlignment() {
        for (type, value) in [(UInt32(4), GGUFImage.u32(3)), (4, GGUFImage.u32(0)), (10, GGUFImage.u64(32))] {
            var g = GGUFImage.valid()
            g.kvs.append(GGUFImage.kv("general.alignment", type: type, value))
            expectError(.badAlignment, key: "general.alignment", g.bytes())
        }
        var ok = GGUFImage.valid()
        ok.kvs.append(GGUFImage.kv("general.alignment", type: 4, GGUFImage.u32(16)))
        ok.alignment = 16
        ok.tensors[1].offset = 16
        ok.data = Array(ok.data[0..<16]) + Array(ok.data[32..<64])
        #expect((try? GGUFFile(bytes: ok.bytes()))?.alignment == 16)
        #expect((try? GGUFFile(bytes: ok.bytes()).floats("b")) == (4..<12).map(Float.init))
    }

    @Test func missingFileIsAnIOError() {
        do {
            _ = try GGUFFile(contentsOf: URL(fileURLWithPath: "/nonexistent/model.gguf"))
            Issue.record("opened a missing file")
        } catch let e as GGUFError {
            #expect(e.kind == .io && e.description.contains("/nonexistent/model.gguf"))
        } catch { Issue.record("\(error)") }
    }
}
