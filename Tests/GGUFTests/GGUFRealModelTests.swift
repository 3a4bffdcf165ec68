import Foundation
import GGUF
import Testing
import TestSupport

/// The three real GGUFs (RLIF_REAL_MODELS=1, files from scripts/get-model in $RLIF_MODELS): the header parses,
/// tensor types are those recorded in /work/shared/notes/real-models.md, and every tensor dequantizes to finite
/// floats. (Values against transformers are checked through the model: GGUFModelTests.)
@Suite(.enabled(if: RealModels.enabled, "set RLIF_REAL_MODELS=1 (and RLIF_MODELS) to check the real GGUFs"))
struct GGUFRealModelTests {
    static let typeCounts: [String: [GGMLType: Int]] = [
        "smollm2-135m-instruct": [.q4_1: 210, .f32: 61, .q8_0: 1],
        "qwen2.5-coder-0.5b-instruct": [.q5_0: 133, .f32: 121, .q8_0: 13, .q6_K: 12, .q4_K: 12],
        "qwen2.5-coder-1.5b-instruct": [.q4_K: 169, .q6_K: 29, .f32: 141],
    ]

    @Test(arguments: RealModels.names)
    func headerAndEveryTensorDequantizes(_ name: String) throws {
        guard let url = RealModels.gguf(name) else { return }
        let f = try GGUFFile(contentsOf: url)
        var counts: [GGMLType: Int] = [:]
        for t in f.tensors { counts[t.type, default: 0] += 1 }
        #expect(counts == Self.typeCounts[name], "\(name): \(counts)")
        #expect(try f.stringArray("tokenizer.ggml.tokens")?.count ?? 0 > 40_000)
        var buf: [Float] = []
        for t in f.tensors {
            buf = [Float](repeating: .nan, count: t.elementCount)
            try buf.withUnsafeMutableBufferPointer { try f.dequantize(t.name, into: $0.baseAddress!, count: t.elementCount) }
            #expect(buf.allSatisfy { $0.isFinite }, "\(name) \(t.name)")
        }
    }
}
