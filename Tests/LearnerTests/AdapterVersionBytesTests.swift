import Foundation
import Learner
import Model
import Testing
import TestSupport
import Wire

/// Bytes of one weight version on the wire, from the layouts alone (no model is loaded): the numbers
/// docs/PROTOCOL.md ("Adapter-only versions") quotes for Qwen2.5-Coder-0.5B with LoRA r 16 on all 7 projections.
/// The embedded default model's numbers come from a real run: `DistributedTests.adapterVersionsSampleWhatMergedVersionsSample`.
@Suite struct AdapterVersionBytesTests {
    /// Qwen2.5-Coder-0.5B-Instruct's config.json shape (untied 151,936-token head: 630M parameters).
    static let qwen05 = ModelConfig(architecture: .qwen2, hiddenSize: 896, intermediateSize: 4864, numHiddenLayers: 24,
                                    numAttentionHeads: 14, numKeyValueHeads: 2, vocabSize: 151_936,
                                    maxPositionEmbeddings: 32768, tieWordEmbeddings: false)

    @Test func qwen05R16AdapterVersionIsAbout1Point4PercentOfTheMergedOne() throws {
        var cfg = Self.qwen05
        // The cached model's own config, when scripts/get-model fetched it: the same shape.
        let real = RealModels.directory.appendingPathComponent("qwen2.5-coder-0.5b-instruct/config.json")
        if let data = try? Data(contentsOf: real) {
            let c = try JSONDecoder().decode(ModelConfig.self, from: data)
            #expect(ParameterLayout(config: c).totalCount == ParameterLayout(config: cfg).totalCount, "\(real.path) is another shape")
            cfg = c
        } else {
            print("AdapterVersionBytesTests: \(real.path) absent; using the built-in Qwen2.5-0.5B shape")
        }
        let ad = try LoRAAdapters(config: LoRAConfig(rank: 16, alpha: 32), model: cfg)
        // Per layer r·(in + out) for q (896+896), k and v (896+128), o (896+896), gate and up (896+4864), down
        // (4864+896): 16 · 22,912 = 366,592 floats; × 24 layers; every tensor a multiple of 16 floats (no padding).
        #expect(ad.parameters.count == 24 * 366_592)
        let snap = try WeightSnapshot(version: 2, parameters: [Float](repeating: 0, count: ad.parameters.count),
                                      manifest: ad.tensors.map { TensorEntry(name: $0.name, shape: $0.shape.map(UInt64.init), offsetElements: UInt64($0.offset)) },
                                      kind: .adapter)
        #expect(snap.totalBytes == 35_192_832 && snap.nChunks == 9, "F32 adapters, 4 MB chunks")
        let full = ParameterLayout(config: cfg).totalCount * 4
        print("BYTES_PER_VERSION qwen2.5-coder-0.5b lora_r16 adapter_f32=\(snap.totalBytes) merged_f32=\(full) frozen_base_once_f32=\(full) ratio=\(Double(snap.totalBytes) / Double(full))")
        #expect(full > 2_400_000_000 && full < 2_600_000_000, "merged F32 version: \(full) bytes")
        #expect(Double(snap.totalBytes) / Double(full) < 0.015)
    }
}
