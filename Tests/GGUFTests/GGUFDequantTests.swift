import Foundation
import GGUF
import Testing
import TestSupport

/// Dequantization of every supported ggml type, bit for bit against gguf-py (`scripts/ref/gguf_fixtures.py`
/// writes `types.gguf`: each tensor `<t>` and `<t>.expected` = `gguf.quants.dequantize` of its bytes, as F32).
@Suite struct GGUFDequantTests {
    static let url = Fixtures.url("gguf/types.gguf")
    static let typed: [(name: String, type: GGMLType)] = [
        ("f32", .f32), ("f16", .f16), ("bf16", .bf16), ("q4_0", .q4_0), ("q4_1", .q4_1), ("q5_0", .q5_0),
        ("q5_1", .q5_1), ("q8_0", .q8_0), ("q4_k", .q4_K), ("q5_k", .q5_K), ("q6_k", .q6_K),
    ]

    @Test func everySupportedTypeIsCoveredByTheFixture() {
        #expect(Set(Self.typed.map(\.type)) == Set(GGUFDequantize.supportedTypes))
    }

    @Test(arguments: typed.map(\.name))
    func dequantizeIsBitExactAgainstGGUFPy(_ name: String) throws {
        let f = try GGUFFile(contentsOf: Self.url)
        let t = try #require(f.tensor(name))
        let expectedInfo = try #require(f.tensor(name + ".expected"))
        #expect(t.type == Self.typed.first { $0.name == name }!.type)
        #expect(t.shape == expectedInfo.shape)
        let got = try f.floats(name)
        let want = try f.floats(name + ".expected")
        #expect(got.count == want.count && got.count == t.elementCount)
        let bad = zip(got, want).enumerated().first { $0.element.0.bitPattern != $0.element.1.bitPattern }
        #expect(bad == nil, "\(name): first mismatch at \(bad.map { "\($0.offset): \($0.element.0) vs \($0.element.1)" } ?? "")")
        // The data is not trivially zero (the test could otherwise pass on a kernel that writes nothing).
        #expect(want.contains { $0 != 0 })
    }

    @Test func rowRangesMatchTheWholeTensor() throws {
        let f = try GGUFFile(contentsOf: Self.url)
        for (name, _) in Self.typed {
            let t = try #require(f.tensor(name))
            let all = try f.floats(name)
            var rows = [Float](repeating: .nan, count: t.rowLength)
            try rows.withUnsafeMutableBufferPointer { try f.dequantize(t, rows: 1..<2, into: $0.baseAddress!) }
            #expect(Array(all[t.rowLength..<2 * t.rowLength]) == rows, "\(name)")
        }
    }

    @Test func unsupportedTypeIsAnErrorNamingTensorAndType() throws {
        let f = try GGUFFile(contentsOf: Self.url)
        #expect(f.tensor("unsupported.q2_k")?.type == .q2_K)
        do {
            _ = try f.floats("unsupported.q2_k")
            Issue.record("Q2_K was dequantized")
        } catch let e as GGUFError {
            #expect(e.kind == .unsupportedType)
            #expect(e.tensor == "unsupported.q2_k")
            #expect(e.description.contains("Q2_K") && e.description.contains("unsupported.q2_k"), "\(e)")
        }
    }

    @Test func destinationCountMustMatch() throws {
        let f = try GGUFFile(contentsOf: Self.url)
        var buf = [Float](repeating: 0, count: 10)
        #expect(throws: GGUFError.self) {
            try buf.withUnsafeMutableBufferPointer { try f.dequantize("q8_0", into: $0.baseAddress!, count: 10) }
        }
        #expect(throws: GGUFError.self) { _ = try f.floats("no.such.tensor") }
    }

    @Test func tensorInfosAreInFileOrderWithRowMajorShapes() throws {
        let f = try GGUFFile(contentsOf: Self.url)
        #expect(f.tensors.first?.name == "f32" && f.tensors[1].name == "f32.expected")
        #expect(f.tensors.last?.name == "unsupported.q2_k")
        let q = try #require(f.tensor("q4_k"))
        #expect(q.dimensions == [512, 2] && q.shape == [2, 512] && q.rowCount == 2 && q.byteCount == 4 * 144)
        #expect(f.tensors.allSatisfy { $0.offset % f.alignment == 0 })
        #expect(f.alignment == 32 && f.dataOffset % 32 == 0 && f.version == 3)
    }
}
