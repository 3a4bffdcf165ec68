import Foundation
import Model
import Testing
import TestSupport
@testable import Training

/// The memory plan's arithmetic against values computed by hand, its fitting rules, the budget parsing, and a
/// run that cannot fit being refused before it samples.
@Suite struct MemoryPlanTests {
    /// C 64, F 128, 2 layers, 4 heads × 16, 2 KV heads (QD 64, KVD 32), vocabulary 300, untied.
    static let tiny = ModelConfig(architecture: .qwen2, hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 2,
                                  numAttentionHeads: 4, numKeyValueHeads: 2, vocabSize: 300, maxPositionEmbeddings: 512,
                                  tieWordEmbeddings: false)

    static var tinyConfig: TrainConfig {
        var c = TrainConfig()
        c.microBatchTokens = 256
        c.maxNewTokens = 32
        c.groupSize = 4
        c.actorBatchSequences = 8
        c.klBeta = 0.005
        c.weightDType = .bf16
        return c
    }

    func bytes(_ p: MemoryPlan, _ name: String) -> Int? { p.items.first { $0.name == name }?.bytes }

    @Test func arithmeticMatchesHandComputedValues() throws {
        // Parameters: embed 300·64 = 19200; per layer q 4096 + 64, k 2048 + 32, v 2048 + 32, o 4096,
        // gate/up/down 3·8192, two norms 128 → 37120; × 2 layers = 74240; final norm 64; lm_head 19200
        // (every size a multiple of the 16-float alignment, so no padding).
        #expect(ParameterLayout(config: Self.tiny).totalCount == 112_704)
        // Longest prompt 40 + 32 new tokens = 72 < micro_batch_tokens 256, so a micro-batch is 256 tokens.
        let p = MemoryPlan(role: .singleProcess, model: Self.tiny, config: Self.tinyConfig, longestPrompt: 40,
                           logitsChunkColumns: 100)
        #expect(bytes(p, "weights") == 450_816)
        #expect(bytes(p, "gradients") == 450_816)
        #expect(bytes(p, "AdamW moments") == 901_632)
        #expect(bytes(p, "reference model") == 450_816)
        // Per layer per token 4·64 + 2 + 2·64 + 2·32 + 4 + 3·128 = 838; forward 2·838 + (2·64 + 1) + 64 = 1869;
        // backward 2·64 + 2·64 + 2·32 + 3·128 + 64 = 768; × 256 tokens × 4 bytes.
        #expect(bytes(p, "activations") == 256 * (1869 + 768) * 4)   // 2,700,288
        // The reference forward keeps nothing for a backward: one layer's tensors, 838 + (2·64 + 1) + 64 = 1031.
        #expect(bytes(p, "reference activations") == 256 * 1031 * 4)  // 1,055,744
        // Policy logits + their gradient + the reference's: 3 × 256 × 100 columns.
        #expect(bytes(p, "LM-head logits chunk") == 307_200)
        // Decode batch 8 → 8 + 4 + 1 = 13 slots × 72 tokens × 2 layers × 32 × K,V.
        #expect(bytes(p, "KV cache") == 479_232)
        // 13 slots × (256 + 128 + 128 + 384 + 300) + 8 × 300 logits = 17,948 floats.
        #expect(bytes(p, "decode buffers") == 71_792)
        #expect(bytes(p, "weight snapshot") == nil)
        // Sampling and training take turns in one process (each phase's buffers freed before the other's): the
        // peak is what is always held plus the larger phase, here training's arena (4.9 MB) over decoding's (0.55 MB).
        #expect(p.items.filter { $0.phase == .decoding }.map(\.name) == ["KV cache", "decode buffers"])
        #expect(p.total == 450_816 * 3 + 901_632 + 2_700_288 + 1_055_744 + 307_200 + MemoryPlan.overheadBytes)
        // A learner with evaluation holds both at once (it does not release between them): everything counts.
        var evalCfg = Self.tinyConfig
        evalCfg.evalEvery = 1
        let lrn = MemoryPlan(role: .learner, model: Self.tiny, config: evalCfg, longestPrompt: 40, logitsChunkColumns: 100)
        #expect(lrn.total == lrn.items.reduce(0) { $0 + $1.bytes })

        // What the process already holds when it plans (tokenizer, prompts) is part of the runtime item.
        let withProcess = MemoryPlan(role: .singleProcess, model: Self.tiny, config: Self.tinyConfig, longestPrompt: 40,
                                     logitsChunkColumns: 100, processBytes: 1000)
        #expect(bytes(withProcess, "runtime") == 1000 + MemoryPlan.overheadBytes && withProcess.total == p.total + 1000)

        // The learner: no decoding (no eval), the BF16 snapshots it publishes (building, current, previous: 3 × 2 B
        // per parameter); β = 0: no reference, 2 logit chunks.
        var c = Self.tinyConfig
        c.klBeta = 0
        let l = MemoryPlan(role: .learner, model: Self.tiny, config: c, longestPrompt: 40, logitsChunkColumns: 100)
        #expect(l.items.map(\.name) == ["weights", "gradients", "AdamW moments", "activations", "LM-head logits chunk", "weight snapshots", "runtime"])
        #expect(bytes(l, "LM-head logits chunk") == 204_800)
        #expect(bytes(l, "weight snapshots") == 676_224)
        // The actor: weights, KV cache, decode buffers, the snapshot it assembles.
        let a = MemoryPlan(role: .actor, model: Self.tiny, config: c, longestPrompt: 40)
        #expect(a.items.map(\.name) == ["weights", "KV cache", "decode buffers", "weight snapshot", "runtime"])
        #expect(bytes(a, "weight snapshot") == 112_704 * 6)   // BF16 chunks + their F32 widening
        // A prompt longer than the micro-batch budget makes the micro-batch one whole sequence (300 + 32 tokens);
        // the chunk is capped at the vocabulary.
        let long = MemoryPlan(role: .learner, model: Self.tiny, config: c, longestPrompt: 300, logitsChunkColumns: 100_000)
        #expect(long.microBatchTokens == 256)
        #expect(bytes(long, "activations") == 332 * (1869 + 768) * 4)
        #expect(bytes(long, "LM-head logits chunk") == 2 * 332 * 300 * 4)
    }

    /// Full fine-tuning with `base_weights: bf16`: the trained weights stay F32, the frozen reference copy is BF16
    /// matrices + F32 vectors; the offline reward's frozen model counts like the KL reference (also with β 0).
    @Test func bf16ReferenceInFullFineTuning() throws {
        var c = Self.tinyConfig
        c.baseWeights = .bf16
        let p = MemoryPlan(role: .singleProcess, model: Self.tiny, config: c, longestPrompt: 40, logitsChunkColumns: 100)
        #expect(bytes(p, "weights") == 450_816)
        // Matrices: embed 19200 + 2 layers × (4096 + 2048 + 2048 + 4096 + 3·8192) + lm_head 19200 = 112,128 × 2 B;
        // vectors: 2 layers × (biases 64 + 32 + 32, norms 2·64) + final norm 64 = 576 × 4 B.
        #expect(bytes(p, "reference model") == 112_128 * 2 + 576 * 4)
        #expect(bytes(p, "gradients") == 450_816 && bytes(p, "AdamW moments") == 901_632)
        c.baseWeights = .f32
        c.klBeta = 0
        #expect(bytes(MemoryPlan(role: .singleProcess, model: Self.tiny, config: c, longestPrompt: 40), "reference model") == nil)
        c.selfCertaintySource = .reference
        let offline = MemoryPlan(role: .singleProcess, model: Self.tiny, config: c, longestPrompt: 40, logitsChunkColumns: 100)
        #expect(bytes(offline, "reference model") == 450_816 && bytes(offline, "reference activations") == 256 * 1031 * 4)
        // An actor's weights are its sampling copy: held as base_weights says.
        c.baseWeights = .bf16
        #expect(bytes(MemoryPlan(role: .actor, model: Self.tiny, config: c, longestPrompt: 40), "weights") == 112_128 * 2 + 576 * 4)
    }

    /// The Qwen2.5-0.5B shape (630M parameters with its untied 151,936-token head).
    static let qwen05 = ModelConfig(architecture: .qwen2, hiddenSize: 896, intermediateSize: 4864, numHiddenLayers: 24,
                                    numAttentionHeads: 14, numKeyValueHeads: 2, vocabSize: 151_936,
                                    maxPositionEmbeddings: 32768, tieWordEmbeddings: false)

    /// LoRA: no base gradients, moments, reference copy or reference arena; the adapters (parameters, gradients,
    /// two moments) and their saved A·x rows instead; the learner adds the merged copy it publishes.
    @Test func loraTermsReplaceTheFullFineTuningOnes() throws {
        var c = Self.tinyConfig
        c.lora = LoRAConfig(rank: 4, alpha: 8)
        let p = MemoryPlan(role: .singleProcess, model: Self.tiny, config: c, longestPrompt: 40, logitsChunkColumns: 100)
        for gone in ["gradients", "AdamW moments", "reference model", "reference activations"] {
            #expect(bytes(p, gone) == nil, "\(gone) with LoRA")
        }
        // Per layer r·(in + out): q 4·(64+64), k 4·(64+32), v 4·(64+32), o 4·(64+64), gate/up 4·(64+128) each,
        // down 4·(128+64) = 4096; × 2 layers = 8192 adapter parameters × 4 floats × 4 bytes.
        #expect(bytes(p, "LoRA adapters") == 8192 * 16)
        // 256 tokens × r 4 × (7 targets × 2 layers + 1 scratch) floats.
        #expect(bytes(p, "LoRA A·x rows") == 256 * 4 * 15 * 4)
        c.activationCheckpointing = true
        let ckpt = MemoryPlan(role: .singleProcess, model: Self.tiny, config: c, longestPrompt: 40, logitsChunkColumns: 100)
        #expect(bytes(ckpt, "LoRA A·x rows") == 256 * 4 * 8 * 4)
        #expect(bytes(p, "LM-head logits chunk") == 2 * 256 * 100 * 4)
        #expect(bytes(p, "weights") == 450_816)
        let full = MemoryPlan(role: .singleProcess, model: Self.tiny, config: Self.tinyConfig, longestPrompt: 40, logitsChunkColumns: 100)
        #expect(full.total - p.total == 450_816 * 4 + 256 * 1031 * 4 + 256 * 100 * 4 - 8192 * 16 - 256 * 4 * 15 * 4)
        // The LoRA learner serves the frozen base once (weight_dtype BF16 here: 2 B per parameter; built a slice at
        // a time, no F32 copy) and three adapter versions (F32 adapters + BF16 snapshot each), not three merged
        // full snapshots and the merged F32 copy they were built from.
        let learner = MemoryPlan(role: .learner, model: Self.tiny, config: c, longestPrompt: 40)
        #expect(bytes(learner, "weight snapshots") == nil && bytes(learner, "merged weights") == nil)
        #expect(bytes(learner, "frozen base snapshot") == 112_704 * 2)
        #expect(bytes(learner, "adapter versions") == 3 * 8192 * 6)
    }

    @Test func unfixedSettingsShrinkToFitAndFixedOnesAreRefusedWithWhatWouldFit() throws {
        var c = TrainConfig()
        c.promptsPerStep = 2
        c.groupSize = 4
        c.maxNewTokens = 128
        let at1024 = MemoryPlan(role: .singleProcess, model: Self.qwen05, config: c, longestPrompt: 200, microBatchTokens: 1024)
        let at4096 = MemoryPlan(role: .singleProcess, model: Self.qwen05, config: c, longestPrompt: 200)
        #expect(at4096.total > at1024.total)
        // Fits as configured: unchanged.
        let same = try MemoryPlan.fit(role: .singleProcess, model: Self.qwen05, config: c, longestPrompt: 200,
                                      budget: at4096.total, fixedKeys: [])
        #expect(same.plan == at4096 && same.adjustments.isEmpty)
        // Not as configured: micro_batch_tokens halves 4096 → 2048 → 1024, and says so.
        let fitted = try MemoryPlan.fit(role: .singleProcess, model: Self.qwen05, config: c, longestPrompt: 200,
                                        budget: at1024.total, fixedKeys: [])
        #expect(fitted.plan.microBatchTokens == 1024 && fitted.plan.decodeBatch == c.actorBatchSequences)
        #expect(fitted.adjustments == ["micro_batch_tokens reduced from 4096 to 1024 to fit in \(MemoryPlan.gib(at1024.total)) (set it to keep your own value)"])
        // The user fixed it: the decode batch is not what is big, so it is refused, naming the largest items and
        // the setting that would fit.
        do {
            _ = try MemoryPlan.fit(role: .singleProcess, model: Self.qwen05, config: c, longestPrompt: 200,
                                   budget: at1024.total, fixedKeys: ["micro_batch_tokens"])
            Issue.record("accepted")
        } catch let e as MemoryPlanError {
            let d = e.description
            #expect(d.contains("does not fit") && d.contains("largest: activations") && d.contains("It fits (\(MemoryPlan.gib(at1024.total))) with --set micro_batch_tokens=1024 (you set micro_batch_tokens)"), "\(d)")
        }
        // Below even the floor (one 328-token sequence per micro-batch: 200 prompt + 128 new; decode batch G): the
        // weights, gradients, moments and reference alone need more.
        do {
            _ = try MemoryPlan.fit(role: .singleProcess, model: Self.qwen05, config: c, longestPrompt: 200,
                                   budget: 8 << 30, fixedKeys: [])
            Issue.record("accepted")
        } catch let e as MemoryPlanError {
            #expect(e.description.contains("Even at micro_batch_tokens 328 and decode batch 4"), "\(e)")
            // What would shrink the fixed part, for this run: LoRA, the reference in BF16 (half its 2.35 GiB), β 0.
            #expect(e.description.contains("use a smaller model, lora (only adapters train") &&
                    e.description.contains("base_weights=bf16 (the reference copy in BF16: 1.17 GiB less), kl_beta=0 (no reference copy), or a machine with more memory."), "\(e)")
        }
        var bf16 = c
        bf16.baseWeights = .bf16
        do {
            _ = try MemoryPlan.fit(role: .singleProcess, model: Self.qwen05, config: bf16, longestPrompt: 200,
                                   budget: 8 << 30, fixedKeys: [])
            Issue.record("accepted")
        } catch let e as MemoryPlanError {
            #expect(!e.description.contains("base_weights=bf16") && e.description.contains("kl_beta=0"), "\(e)")
        }
        // An actor shrinks its decode batch, never below a group.
        let big = MemoryPlan(role: .actor, model: Self.qwen05, config: c, longestPrompt: 200, decodeBatch: 4)
        let actor = try MemoryPlan.fit(role: .actor, model: Self.qwen05, config: c, longestPrompt: 200, budget: big.total, fixedKeys: [])
        #expect(actor.plan.decodeBatch == 4)
    }

    @Test func budgetFromCgroupOrMemAvailable() throws {
        let meminfo = "MemTotal:       24683568 kB\nMemFree:  100 kB\nMemAvailable:   23503172 kB\n"
        // No limit (cgroup v1 "unlimited"): MemAvailable.
        let v1 = "4:memory:/x\n0::/\n"
        let files1 = ["/sys/fs/cgroup/memory/x/memory.limit_in_bytes": "9223372036854771712\n"]
        #expect(SystemMemory.parseBudget(meminfo: meminfo, cgroup: v1, read: { files1[$0] })
                == .init(bytes: 23_503_172 * 1024, source: "MemAvailable"))
        // A cgroup v2 limit below MemAvailable wins, less what the group uses.
        let v2 = "0::/user.slice/run\n"
        let files2 = ["/sys/fs/cgroup/user.slice/run/memory.max": "8589934592\n", "/sys/fs/cgroup/user.slice/run/memory.current": "1073741824\n"]
        let b = try #require(SystemMemory.parseBudget(meminfo: meminfo, cgroup: v2, read: { files2[$0] }))
        #expect(b.bytes == 7 << 30 && b.source.hasPrefix("cgroup v2 memory.max 8.00 GiB"))
        // "max" is no limit.
        #expect(SystemMemory.parseBudget(meminfo: meminfo, cgroup: v2, read: { $0.hasSuffix("memory.max") ? "max\n" : nil })?.source == "MemAvailable")
        #expect(SystemMemory.kibibytes("VmHWM", in: "VmPeak:  5 kB\nVmHWM:\t    1752 kB\n") == 1752)
    }

    /// `rlif train --single-process` with a budget the embedded default cannot fit in even at its smallest
    /// settings: refused with the plan's error before the model is loaded — no metrics.jsonl, no step.
    @Test func aRunThatCannotFitIsRefusedBeforeSampling() throws {
        try #require(CLI.binary != nil, "the rlif executable must be built (swift build -c release, or RLIF_BIN)")
        let out = try Fixtures.temporaryDirectory("rlif-plan-refuse")
        defer { try? FileManager.default.removeItem(at: out) }
        let t0 = Date()
        let r = try CLI.run(["train", "--single-process", "--output-dir", out.path, "--set", "steps=1"],
                            env: ["RLIF_MEMORY_BUDGET": "100M"], timeout: 60)
        let text = r.err
        #expect(r.status != 0)
        #expect(text.contains("does not fit in 0.10 GiB") && text.contains("largest:"), "\(text)")
        #expect(text.contains("memory plan (train --single-process"), "the plan is printed first: \(text)")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("metrics.jsonl").path), "it started the run")
        #expect(Date().timeIntervalSince(t0) < 30)
    }
}

@Suite struct MemoryPlanCheckpointingTests {
    /// With activation checkpointing the activations term is the layers' inputs plus one layer's tensors (it used to
    /// be the full arena whatever the setting: the LoRA run that measured 3.5 GiB was planned at 6.8 GiB).
    @Test func checkpointingKeepsLayerInputsAndOneLayer() {
        var c = MemoryPlanTests.tinyConfig
        let full = MemoryPlan(role: .singleProcess, model: MemoryPlanTests.tiny, config: c, longestPrompt: 40, logitsChunkColumns: 100)
        c.activationCheckpointing = true
        let ckpt = MemoryPlan(role: .singleProcess, model: MemoryPlanTests.tiny, config: c, longestPrompt: 40, logitsChunkColumns: 100)
        // tiny: C 64, per layer 838, 2 layers; kept per token 2·64 + 838 + 129 + 64 = 1159 (vs 1869); backward 768.
        let a = ckpt.items.first { $0.name == "activations" }!.bytes
        #expect(a == 256 * (1159 + 768) * 4)
        #expect(full.items.first { $0.name == "activations" }!.bytes == 256 * (1869 + 768) * 4)
    }
}
