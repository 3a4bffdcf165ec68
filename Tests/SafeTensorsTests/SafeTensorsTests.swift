import Foundation
import SafeTensors
import Shared
import TestSupport
import Testing

/// Builds a raw safetensors image from a header string and data bytes (for corrupt-file tests).
private func image(_ header: String, data: [UInt8], headerLength: UInt64? = nil) -> Data {
    var d = Data()
    let h = Data(header.utf8)
    withUnsafeBytes(of: (headerLength ?? UInt64(h.count)).littleEndian) { d.append(contentsOf: $0) }
    d.append(h)
    d.append(contentsOf: data)
    return d
}

private func expectError(_ kind: SafeTensorsError.Kind, tensor: String? = nil, _ header: String, data: [UInt8] = [],
                         headerLength: UInt64? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
    let url = URL(fileURLWithPath: "/virtual/bad.safetensors")
    do {
        _ = try SafeTensorsFile(data: image(header, data: data, headerLength: headerLength), url: url)
        Issue.record("expected \(kind) error, file was accepted", sourceLocation: sourceLocation)
    } catch let e as SafeTensorsError {
        #expect(e.kind == kind, "\(e)", sourceLocation: sourceLocation)
        #expect(e.tensor == tensor, "\(e)", sourceLocation: sourceLocation)
        #expect(e.description.contains("/virtual/bad.safetensors"), sourceLocation: sourceLocation)
        if let t = tensor { #expect(e.description.contains("'\(t)'"), sourceLocation: sourceLocation) }
    } catch {
        Issue.record("unexpected error type \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct SafeTensorsFormatTests {
    /// `readFloats` reclaims a tensor's mapped pages once copied (MADV_PAGEOUT, so a model load does not keep the
    /// file resident next to the parameters): that is advice only — reading the same multi-page tensors again, in
    /// any order and dtype, gives the same values.
    @Test func readingAgainAfterPagesAreReleasedGivesTheSameValues() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a: [Float] = (0..<70_000).map { Float($0 % 977) * 0.25 - 17 }
        let b: [Float] = (0..<50_001).map { Float($0 % 331) * -0.5 }
        var w = SafeTensorsWriter()
        try w.add(name: "a", shape: [70_000], floats: a, as: .f32)
        try w.add(name: "b", shape: [50_001], floats: b, as: .bf16)
        let url = dir.appendingPathComponent("big.safetensors")
        try w.write(to: url)
        let f = try SafeTensorsFile(contentsOf: url)
        let b1 = try f.floats("b"), a1 = try f.floats("a")
        #expect(a1 == a)
        for _ in 0..<2 {
            #expect(try f.floats("a") == a1)
            #expect(try f.floats("b") == b1)
        }
    }

    @Test func roundTripAllWritableDTypes() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let vals: [Float] = (0..<30).map { Float($0) * 0.731 - 9.3 } + [0, -0, .infinity, 1e-30, 70000]
        var w = SafeTensorsWriter()
        try w.add(name: "w.f32", shape: [5, 7], floats: vals, as: .f32)
        try w.add(name: "w.bf16", shape: [35], floats: vals, as: .bf16)
        try w.add(name: "w.f16", shape: [7, 5], floats: vals, as: .f16)
        try w.add(name: "ids64", shape: [2, 2], ints: [1, -2, Int64.max, Int64.min], as: .i64)
        try w.add(name: "ids32", shape: [3], ints: [5, -6, 7], as: .i32)
        try w.add(name: "empty", shape: [0, 4], floats: [], as: .f32)
        let url = dir.appendingPathComponent("x.safetensors")
        try w.write(to: url, metadata: ["format": "pt", "quote\"key": "a\nb"])
        let f = try SafeTensorsFile(contentsOf: url)
        #expect(f.tensorNames == ["empty", "ids32", "ids64", "w.bf16", "w.f16", "w.f32"])
        #expect(f.metadata == ["format": "pt", "quote\"key": "a\nb"])
        #expect(f.shape(of: "w.f32") == [5, 7] && f.dtype(of: "w.bf16") == .bf16 && f.shape(of: "empty") == [0, 4])
        #expect(try f.floats("w.f32") == vals)
        #expect(try f.floats("w.bf16") == vals.map { BFloat16.toFloat(BFloat16.from($0)) })
        #expect(try f.floats("w.f16") == vals.map { Float(Float16($0)) })
        #expect(try f.ints("ids64") == [1, -2, Int64.max, Int64.min])
        #expect(try f.ints("ids32") == [5, -6, 7])
        #expect(try f.floats("empty") == [])
        // Header is 8-byte aligned and padded with spaces, like the Python library.
        let raw = try Data(contentsOf: url)
        let n = raw.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        #expect(n % 8 == 0)
        // No temporary file is left behind, and overwriting works.
        try w.write(to: url)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["x.safetensors"])
        #expect(try SafeTensorsFile(contentsOf: url).metadata.isEmpty)
    }

    @Test func readsPythonWrittenFile() throws {
        let f = try SafeTensorsFile(contentsOf: Fixtures.url("model/safetensors-python.safetensors"))
        #expect(f.metadata == ["writer": "safetensors.torch"])
        #expect(f.shape(of: "f32") == [2, 3, 4])
        // torch: arange(f32) * 0.37 - 3 in float32; the same IEEE operations here.
        #expect(try f.floats("f32") == (0..<24).map { Float($0) * Float(0.37) - 3 })
        // torch's bf16/f16 conversions vs ours, bit for bit (ties, subnormals, inf, overflow included).
        let bsrc = try f.floats("bf16_src")
        let bf = try f.rawBytes("bf16")
        let torchBits = bf.withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) }
        #expect(torchBits.count == bsrc.count)
        for (i, x) in bsrc.enumerated() where BFloat16.from(x) != torchBits[i] {
            Issue.record("bf16 of \(x) (bits \(String(x.bitPattern, radix: 16))) at [\(i)]: ours \(String(BFloat16.from(x), radix: 16)), torch \(String(torchBits[i], radix: 16))")
        }
        #expect(try f.floats("bf16") == torchBits.map(BFloat16.toFloat))
        let hsrc = try f.floats("f16_src")
        #expect(try f.floats("f16") == hsrc.map { Float(Float16($0)) })
        #expect(try f.floats("f64") == [-1, -0.5, 0, 0.5, 1])
        #expect(try f.ints("i64") == Array(-5..<5))
        #expect(try f.ints("i32") == [Int64(Int32.max), Int64(Int32.min), 7, -7])
        #expect(f.shape(of: "scalar") == [])
        #expect(try f.floats("scalar") == [2.5])
        #expect(f.shape(of: "empty") == [0, 3])
        #expect(try f.floats("empty").isEmpty)
    }

    @Test func writerReproducesPythonBytes() throws {
        // Same tensors as `safetensors-layout.safetensors` (written by safetensors.torch.save_file).
        var w = SafeTensorsWriter()
        try w.add(name: "w", shape: [2, 3], floats: (0..<6).map { Float($0) / 4 })
        try w.add(name: "a", shape: [2], floats: [1.5, -2.0])
        try w.add(name: "b", shape: [2], ints: [3, 4])
        try w.add(name: "h", shape: [3], floats: [0.5, 1, 2], as: .bf16)
        let python = try Data(contentsOf: Fixtures.url("model/safetensors-layout.safetensors"))
        let ours = w.serialized(metadata: ["k": "v"])
        #expect(ours == python, "ours:\n\(String(decoding: ours, as: UTF8.self))\npython:\n\(String(decoding: python, as: UTF8.self))")
    }

    /// `stream` writes the same bytes as `serialized` (header, dtype-then-name order, BF16/F16 rounding), including
    /// tensors longer than one conversion chunk and an empty one; the file replaces the old one only when complete.
    @Test func streamedFileIsByteIdenticalToSerialized() throws {
        let big = SafeTensorsWriter.streamChunkElements * 2 + 37
        let a = (0..<big).map { Float(sin(Double($0) * 0.37)) * 3 }
        let b = (0..<1000).map { Float($0) * 1.000_1 - 400 }
        let dir = try Fixtures.temporaryDirectory("rlif-stream")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("s.safetensors")
        var w = SafeTensorsWriter()
        try w.add(name: "z.big", shape: [big], floats: a, as: .bf16)
        try w.add(name: "a.f32", shape: [10, 100], floats: b)
        try w.add(name: "m.f16", shape: [1000], floats: b, as: .f16)
        try w.add(name: "e", shape: [0, 4], floats: [])
        try a.withUnsafeBufferPointer { pa in
            try b.withUnsafeBufferPointer { pb in
                let none = UnsafeBufferPointer<Float>(start: nil, count: 0)
                try SafeTensorsWriter.stream([.init(name: "z.big", shape: [big], floats: pa, dtype: .bf16),
                                              .init(name: "a.f32", shape: [10, 100], floats: pb),
                                              .init(name: "m.f16", shape: [1000], floats: pb, dtype: .f16),
                                              .init(name: "e", shape: [0, 4], floats: none)],
                                             to: url, metadata: ["format": "pt"])
                #expect(try Data(contentsOf: url) == w.serialized(metadata: ["format": "pt"]))
                // A stream that fails after its first chunk leaves the previous file and no temporary.
                struct Stop: Error {}
                #expect(throws: Stop.self) {
                    try SafeTensorsWriter.stream([.init(name: "z.big", shape: [big], floats: pa)], to: url) { _ in throw Stop() }
                }
                #expect(try Data(contentsOf: url) == w.serialized(metadata: ["format": "pt"]))
                #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["s.safetensors"])
                #expect(throws: SafeTensorsError.self) {
                    try SafeTensorsWriter.stream([.init(name: "x", shape: [3], floats: pb)], to: url)
                }
            }
        }
    }

    /// F32 tensors of an opened file are read with pread(2) from the file that was opened, not re-opened by path:
    /// replacing the path afterwards (an atomic re-save) does not change what an open reader returns.
    @Test func openedFileReadsTheSameFileAfterThePathIsReplaced() throws {
        let dir = try Fixtures.temporaryDirectory("rlif-pread")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("x.safetensors")
        var a = SafeTensorsWriter(), b = SafeTensorsWriter()
        try a.add(name: "t", shape: [3], floats: [1, 2, 3])
        try b.add(name: "t", shape: [3], floats: [7, 8, 9])
        try a.write(to: url)
        let f = try SafeTensorsFile(contentsOf: url)
        try b.write(to: url)
        #expect(try f.floats("t") == [1, 2, 3])
        #expect(try SafeTensorsFile(contentsOf: url).floats("t") == [7, 8, 9])
    }

    @Test func accessorErrorsNameTheTensor() throws {
        var w = SafeTensorsWriter()
        try w.add(name: "ids", shape: [2], ints: [1, 2])
        try w.add(name: "x", shape: [2, 2], floats: [1, 2, 3, 4])
        #expect(throws: SafeTensorsError.self) { try w.add(name: "x", shape: [4], floats: [1, 2, 3, 4]) }
        #expect(throws: SafeTensorsError.self) { try w.add(name: "y", shape: [3], floats: [1, 2, 3, 4]) }
        let f = try SafeTensorsFile(data: w.serialized(), url: URL(fileURLWithPath: "/m.safetensors"))
        func kind(_ body: () throws -> Void) -> SafeTensorsError.Kind? {
            do { try body(); return nil } catch let e as SafeTensorsError { return e.kind } catch { return nil }
        }
        #expect(kind { _ = try f.floats("ids") } == .wrongDType)
        #expect(kind { _ = try f.ints("x") } == .wrongDType)
        #expect(kind { _ = try f.floats("nope") } == .missingTensor)
        var buf = [Float](repeating: 0, count: 3)
        #expect(kind { try buf.withUnsafeMutableBufferPointer { try f.readFloats("x", into: $0.baseAddress!, count: 3) } } == .countMismatch)
        buf = [Float](repeating: 0, count: 4)
        try buf.withUnsafeMutableBufferPointer { try f.readFloats("x", into: $0.baseAddress!, count: 4) }
        #expect(buf == [1, 2, 3, 4])
    }

    @Test func corruptFilesGivePreciseErrors() throws {
        let e8 = [UInt8](repeating: 0, count: 8)
        let ok = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        // Sanity: the well-formed one parses.
        _ = try SafeTensorsFile(data: image(ok, data: e8), url: URL(fileURLWithPath: "/virtual/bad.safetensors"))
        expectError(.badHeaderLength, ok, data: e8, headerLength: 1 << 40)
        expectError(.badHeaderLength, ok, data: [], headerLength: UInt64(ok.utf8.count + 1))
        expectError(.badJSON, #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, data: e8)
        expectError(.badJSON, #"[1,2]"#)
        expectError(.unsupportedDType, tensor: "a", #"{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}"#, data: e8)
        expectError(.badEntry, tensor: "a", #"{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#, data: e8)
        expectError(.badEntry, tensor: "a", #"{"a":{"dtype":"F32","data_offsets":[0,8]}}"#, data: e8)
        expectError(.badEntry, tensor: "a", #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}"#, data: e8)
        expectError(.badShape, tensor: "a", #"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: e8)
        expectError(.badOffsets, tensor: "a", #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: e8)
        expectError(.badOffsets, tensor: "a", #"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, data: e8)
        expectError(.badOffsets, tensor: "b",
                    #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: e8)
        expectError(.badOffsets, tensor: "a", #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: e8)
        expectError(.truncated, tensor: "a", ok, data: [0, 0, 0, 0, 0])
        expectError(.trailingBytes, ok, data: e8 + [1])
        expectError(.badEntry, tensor: "__metadata__", #"{"__metadata__":{"k":1}}"#)
    }

    @Test func truncatedRealFileNamesTensor() throws {
        var w = SafeTensorsWriter()
        try w.add(name: "model.embed_tokens.weight", shape: [4, 4], floats: [Float](repeating: 1, count: 16))
        let full = w.serialized()
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.safetensors")
        try full.prefix(full.count - 3).write(to: url)
        do {
            _ = try SafeTensorsFile(contentsOf: url)
            Issue.record("truncated file accepted")
        } catch let e as SafeTensorsError {
            #expect(e.kind == .truncated && e.tensor == "model.embed_tokens.weight" && e.file == url.path, "\(e)")
        }
        do {
            _ = try SafeTensorsFile(contentsOf: dir.appendingPathComponent("missing.safetensors"))
            Issue.record("missing file accepted")
        } catch let e as SafeTensorsError { #expect(e.kind == .io) }
    }

    @Test func shardedCheckpoint() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var a = SafeTensorsWriter(), b = SafeTensorsWriter()
        try a.add(name: "x", shape: [2], floats: [1, 2])
        try a.add(name: "z", shape: [1], floats: [9])
        try b.add(name: "y", shape: [1, 3], floats: [3, 4, 5], as: .bf16)
        try a.write(to: dir.appendingPathComponent("model-00001-of-00002.safetensors"))
        try b.write(to: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
        func index(_ map: [String: String]) throws {
            let obj: [String: Any] = ["metadata": ["total_size": 14], "weight_map": map]
            try JSONSerialization.data(withJSONObject: obj).write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        }
        try index(["x": "model-00001-of-00002.safetensors", "y": "model-00002-of-00002.safetensors",
                   "z": "model-00001-of-00002.safetensors"])
        let c = try SafeTensorsCheckpoint(directory: dir)
        #expect(c.tensorNames == ["x", "y", "z"])
        #expect(try c.floats("y") == [3, 4, 5])
        #expect(c.shape(of: "y") == [1, 3] && c.dtype(of: "y") == .bf16)
        #expect(try c.floats("x") == [1, 2])
        #expect(c.metadata["total_size"] == "14")
        // Index pointing to the wrong shard, and a shard tensor missing from the index.
        try index(["x": "model-00002-of-00002.safetensors", "y": "model-00002-of-00002.safetensors",
                   "z": "model-00001-of-00002.safetensors"])
        #expect { try SafeTensorsCheckpoint(directory: dir) } throws: { ($0 as? SafeTensorsError)?.kind == .badIndex && ($0 as? SafeTensorsError)?.tensor == "x" }
        try index(["x": "model-00001-of-00002.safetensors", "y": "model-00002-of-00002.safetensors"])
        #expect { try SafeTensorsCheckpoint(directory: dir) } throws: { ($0 as? SafeTensorsError)?.kind == .badIndex && ($0 as? SafeTensorsError)?.tensor == "z" }
    }
}

/// `AtomicDirectory`, the temp-sibling-and-rename writer that checkpoints and exported adapters share.
@Suite struct AtomicDirectoryTests {
    func files(_ d: URL) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: d.path)) ?? []).sorted() }

    @Test func writesThenReplacesAndLeavesNoTemporaryName() throws {
        let root = try Fixtures.temporaryDirectory("rlif-atomic-dir")
        defer { try? FileManager.default.removeItem(at: root) }
        let target = root.appendingPathComponent("out")
        try AtomicDirectory.write(target) { try Data("one".utf8).write(to: $0.appendingPathComponent("a")) }
        #expect(files(target) == ["a"])
        try AtomicDirectory.write(target) { try Data("two".utf8).write(to: $0.appendingPathComponent("b")) }
        #expect(files(target) == ["b"], "a replaced directory keeps nothing of the old one")
        #expect(files(root) == ["out"], "no .tmp- sibling left: \(files(root))")
    }

    @Test func aFailedFillLeavesTheEarlierDirectoryAndNoTemporaryName() throws {
        struct Boom: Error {}
        let root = try Fixtures.temporaryDirectory("rlif-atomic-dir")
        defer { try? FileManager.default.removeItem(at: root) }
        let target = root.appendingPathComponent("out")
        try AtomicDirectory.write(target) { try Data("one".utf8).write(to: $0.appendingPathComponent("a")) }
        #expect(throws: Boom.self) {
            try AtomicDirectory.write(target) { tmp in
                try Data("half".utf8).write(to: tmp.appendingPathComponent("b"))
                throw Boom()
            }
        }
        #expect(files(target) == ["a"])
        #expect(try String(contentsOf: target.appendingPathComponent("a"), encoding: .utf8) == "one")
        #expect(files(root) == ["out"], "the failed write's temporary directory was left: \(files(root))")
        // And a first write that fails leaves nothing at all.
        let fresh = root.appendingPathComponent("never")
        #expect(throws: Boom.self) { try AtomicDirectory.write(fresh) { _ in throw Boom() } }
        #expect(files(root) == ["out"])
    }
}
