import Foundation
import Model
import Sampling
import Testing
import TestSupport

/// Greedy decoding of the real GGUF models against transformers (RLIF_REAL_MODELS=1, GGUFs in $RLIF_MODELS):
/// the first 3 GSM8K test questions through each model's chat template (ids from transformers), 64 new tokens,
/// KV-cache decode in rlif vs `generate(do_sample=False)` in transformers (fixtures `real-<name>-greedy.json` from
/// scripts/ref/gguf_model_ref.py --greedy). The continuations must be identical, except that they may part at a
/// step where transformers' two best logits are within `tieMargin` (float32 vs float64 rounding decides those).
@Suite(.enabled(if: RealModels.enabled, "set RLIF_REAL_MODELS=1 (and RLIF_MODELS) to check greedy decoding of the real GGUF models"),
       .serialized)
struct GGUFRealModelGreedyTests {
    struct Fixture: Decodable {
        var model: String
        var eos_token_id: Int
        var prompts: [[Int32]]
        var continuations: [[Int32]]
        var margins: [[Double]]
    }

    static let tieMargin = 2e-3

    @Test(arguments: RealModels.names)
    func greedy64TokensMatchTransformers(_ name: String) throws {
        guard let url = RealModels.gguf(name) else { return }
        let fxURL = Fixtures.url("gguf/real-\(name)-greedy.json")
        guard FileManager.default.fileExists(atPath: fxURL.path) else {
            print("skipping greedy check of \(name): no fixture \(fxURL.lastPathComponent) (gguf_model_ref.py --greedy \(name))")
            return
        }
        let fx = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: fxURL))
        let model = try Transformer.load(gguf: url)
        let params = SamplingParameters(temperature: 0, maxNewTokens: 64, stopTokenIds: [Int32(fx.eos_token_id)])
        let requests = fx.prompts.enumerated().map { k, p in GroupRequest(promptTokens: p, groupSize: 1, parameters: params, seed: UInt64(k)) }
        let groups = try GroupedSampler.sample(requests, on: model, maxBatchSequences: requests.count)
        for (k, g) in groups.enumerated() {
            let got = g.completions[0].tokens, want = fx.continuations[k]
            if let i = zip(got, want).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
                let margin = fx.margins[k][i]
                print("\(name) question \(k): parts from transformers at token \(i) (transformers' top-2 logit margin \(margin))")
                #expect(margin < Self.tieMargin, "\(name) question \(k): token \(i) is \(got[i]), transformers \(want[i]) (margin \(margin))")
            } else {
                #expect(got.count == want.count, "\(name) question \(k): \(got.count) tokens, transformers \(want.count)")
            }
        }
    }
}
