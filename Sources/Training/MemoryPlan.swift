import Foundation
import Model
import Sampling

/// The estimated peak resident memory of a run, item by item, computed from the model's `config.json` and the
/// `TrainConfig` before anything is loaded, so that `rlif train`, `rlif learner` and `rlif actor` can say what
/// they will need next to what the machine has, shrink the settings the user left at their defaults until the
/// run fits, or refuse it with the largest items named (`fit`).
///
/// Every term is the size of a buffer the code allocates and keeps (F32 = 4 bytes; alignment padding ignored):
/// - weights / gradients: `ParameterLayout.totalCount` floats each (weights with `base_weights: bf16`: 2 bytes per
///   matrix value); AdamW moments: two more;
/// - reference: a second copy of the weights when `kl_beta` > 0;
/// - with `lora`: no base gradients, moments, reference copy or reference arena (the reference is the base with the
///   adapters off, in the policy's own arena); instead the adapters, 4 floats per adapter parameter (parameters,
///   gradients, two moments; L · Σ_targets r·(in + out) of them), and their saved A·x rows, r floats per token per
///   target (per layer too without activation checkpointing) plus an (N, r) scratch; the learner also builds the
///   merged weights it publishes in a temporary F32 copy of the base;
/// - training activations (`Activations`), per token of a micro-batch: per layer 4C + 2 + 2QD + 2KVD + NH + 3F
///   saved for backward, plus 2C + 1 (final norm), 2C (gathered logit rows and their gradient), and the backward
///   scratch 2C + 2QD + 2KVD + 3F; the reference forward keeps its own arena without the backward part;
/// - LM-head logits: `[micro-batch tokens × logitsChunkColumns]` for the policy's logits, their gradient and the
///   reference's logits (3 such chunks);
/// - KV cache: 2 · layers · slots · (longest prompt + max_new_tokens) · KVD, with `decoderSlotsNeeded(batch)`
///   slots; decode buffers: per slot 4C + 2QD + 4KVD + 3F + V, plus the sampler's batch × V logits;
/// - weight snapshots: the weights as sent to actors (F32 or BF16), three on the learner (building, current,
///   previous), one being assembled on an actor (plus its F32 widening for BF16); with LoRA the learner holds the
///   frozen base as sent once (built a slice at a time from the model's weights) and three adapter versions instead;
/// - runtime: what the process already holds when it plans (executable, tokenizer, prompts: `processBytes`, its RSS)
///   plus `overheadBytes` for BLAS thread buffers, allocator slack and per-step temporaries.
/// A micro-batch holds at least one whole sequence, so its token count is max(micro_batch_tokens, longest
/// prompt + max_new_tokens); decoding always admits a whole group, so the decode batch is at least G.
public struct MemoryPlan: Sendable, Equatable {
    public enum Role: String, Sendable {
        case singleProcess = "train --single-process"
        case learner = "learner"
        case actor = "actor"
    }

    /// When an item is resident. A single-process run samples and trains in turns and frees each phase's buffers
    /// before the other's (`Transformer.releaseDecoding` / `releaseActivations`), so its peak is the items held
    /// throughout plus the larger phase; the other roles hold everything at once.
    public enum Phase: Sendable, Equatable { case always, training, decoding }

    public struct Item: Sendable, Equatable {
        public var name: String
        public var bytes: Int
        public var detail: String
        public var phase: Phase = .always
    }

    /// Columns of the vocabulary the LM head materialises at once (the fused, chunked head of issue 11). Must equal
    /// the head's own chunk constant; the full vocabulary (today's unchunked head) is `vocabSize` columns.
    public static let logitsChunkColumns = 4096

    /// BLAS thread buffers, allocator slack and per-step temporaries beyond the listed buffers: calibrated against
    /// `/usr/bin/time -v` peaks of single-process runs (docs/PERFORMANCE.md "Memory").
    public static let overheadBytes = 160 << 20

    public let role: Role
    public let items: [Item]
    /// The settings this plan is for.
    public let microBatchTokens: Int
    public let decodeBatch: Int
    public var total: Int {
        func sum(_ p: Phase) -> Int { items.filter { $0.phase == p }.reduce(0) { $0 + $1.bytes } }
        guard role == .singleProcess else { return items.reduce(0) { $0 + $1.bytes } }
        return sum(.always) + max(sum(.training), sum(.decoding))
    }

    /// - Parameters:
    ///   - longestPrompt: tokens of the longest formatted prompt (0 if unknown).
    ///   - logitsChunkColumns: vocabulary columns of one LM-head chunk (capped at the vocabulary).
    ///   - processBytes: resident memory of the process when it plans (tokenizer, prompts), 0 if unknown.
    public init(role: Role, model m: ModelConfig, config c: TrainConfig, longestPrompt: Int,
                microBatchTokens: Int? = nil, decodeBatch: Int? = nil,
                logitsChunkColumns: Int = MemoryPlan.logitsChunkColumns, processBytes: Int = 0) {
        self.role = role
        self.microBatchTokens = microBatchTokens ?? c.microBatchTokens
        self.decodeBatch = decodeBatch ?? c.actorBatchSequences
        let f4 = 4
        let p = ParameterLayout(config: m).totalCount
        let C = m.hiddenSize, QD = m.qDim, KVD = m.kvDim, F = m.intermediateSize, NH = m.numAttentionHeads
        let L = m.numHiddenLayers, V = m.vocabSize
        let sequence = min(longestPrompt + c.maxNewTokens, m.maxPositionEmbeddings)
        let n = max(self.microBatchTokens, sequence)
        let chunk = min(max(1, logitsChunkColumns), V)
        let b = max(self.decodeBatch, c.groupSize)
        let slots = decoderSlotsNeeded(maxBatchSequences: b)
        var items: [Item] = []
        func add(_ name: String, _ floats: Int, _ detail: String, _ phase: Phase = .always) {
            items.append(Item(name: name, bytes: floats * f4, detail: detail, phase: phase))
        }

        // `base_weights` is how the frozen weights are held: the sampling weights of an actor, the LoRA base, or
        // in full fine-tuning the reference copy (the trained policy itself is always F32).
        let training = role != .actor
        let policyDType = training ? c.policyWeights : c.baseWeights
        items.append(Item(name: "weights", bytes: ParameterLayout(config: m).weightBytes(policyDType),
                          detail: policyDType == .bf16 ? "\(p) parameters, matrices BF16 (base_weights: bf16), norms and biases F32" : "\(p) F32 parameters"))
        let perLayer = 4 * C + 2 + 2 * QD + 2 * KVD + NH + 3 * F
        // Every arena also holds the final residual and norm (+ rstd) and the gathered head rows.
        let headPerToken = 2 * C + 1 + C
        let forwardPerToken = L * perLayer + headPerToken
        // With activation checkpointing the training forward keeps each layer's input (C per token and layer) and one
        // layer's tensors, recomputed layer by layer in the backward (`LayerStorage.inputs`).
        let keptPerToken = c.activationCheckpointing ? L * C + perLayer + headPerToken : forwardPerToken
        let keptDetail = c.activationCheckpointing
            ? "tokens per micro-batch: \(L) layers' inputs + one layer's tensors (activation checkpointing)"
            : "tokens per micro-batch × \(L) layers, kept for backward"
        // LoRA (a config that passed validation; an invalid one is refused before any plan).
        let lora = c.lora.flatMap { lc in (try? lc.targets()).map { (lc.rank, $0) } }
        let adapterParams = lora.map { r, targets in L * targets.reduce(0) { a, t in let (o, i) = t.shape(m); return a + r * (o + i) } } ?? 0
        if training, let (r, targets) = lora {
            add("LoRA adapters", 4 * adapterParams,
                "\(adapterParams) adapter parameters (r \(r), \(targets.count) targets): F32 parameters, gradients, exp_avg, exp_avg_sq; the base is frozen (no gradients, moments or reference copy)")
            add("LoRA A·x rows", n * r * (targets.count * (c.activationCheckpointing ? 1 : L) + 1),
                "\(n) tokens × r \(r) per target\(c.activationCheckpointing ? "" : " and layer"), kept for backward, + scratch", .training)
            let backwardPerToken = 2 * C + 2 * QD + 2 * KVD + 3 * F + C
            add("activations", n * (keptPerToken + backwardPerToken), "\(n) \(keptDetail)", .training)
            add("LM-head logits chunk", 2 * n * chunk,
                "2 × [\(n) tokens × \(chunk) vocabulary columns] (policy logits and gradient; the reference forward reuses them)", .training)
        } else if training {
            add("gradients", p, "F32, one per parameter")
            add("AdamW moments", 2 * p, "exp_avg + exp_avg_sq, F32")
            // The frozen initial model (`RunSetup`): the KL reference and/or the offline reward's model.
            let frozen = c.keepsInitialModel
            if frozen {
                items.append(Item(name: "reference model", bytes: ParameterLayout(config: m).weightBytes(c.baseWeights),
                                  detail: "frozen copy of the initial weights (kl_beta > 0 or self_certainty_source: reference), "
                                      + (c.baseWeights == .bf16 ? "matrices BF16 (base_weights: bf16)" : "F32")))
            }
            let backwardPerToken = 2 * C + 2 * QD + 2 * KVD + 3 * F + C
            add("activations", n * (keptPerToken + backwardPerToken), "\(n) \(keptDetail)", .training)
            // Its forwards keep nothing for a backward (`LayerStorage.shared`): one layer's tensors, reused by every layer.
            if frozen { add("reference activations", n * (perLayer + headPerToken), "the reference forward's arena, \(n) tokens × one layer's tensors (inference)", .training) }
            let chunks = frozen ? 3 : 2
            add("LM-head logits chunk", chunks * n * chunk,
                "\(chunks) × [\(n) tokens × \(chunk) vocabulary columns] (policy logits and gradient\(frozen ? ", reference" : ""))", .training)
        }
        let decodes = role != .learner || (c.evalEvery > 0)
        if decodes {
            add("KV cache", 2 * L * slots * sequence * KVD,
                "\(slots) slots (decode batch \(b)) × \(sequence) tokens × \(L) layers × K and V", .decoding)
            add("decode buffers", slots * (4 * C + 2 * QD + 4 * KVD + 3 * F + V) + b * V, "per-slot activations and [batch × vocabulary] logits", .decoding)
        }
        if role != .singleProcess {
            let bf16 = c.weightDType == .bf16
            if role == .learner && lora != nil {
                // Actors that apply adapters (the default) get the frozen base once and each version's adapters
                // (`ServedVersion`: the F32 adapters and their snapshot, for building, current and previous).
                // Merged full versions exist only while an actor run with --merged-weights is connected: not
                // counted here (each would add 3 × the weights as sent, like full fine-tuning).
                items.append(Item(name: "frozen base snapshot", bytes: p * (bf16 ? 2 : 4),
                                  detail: "the base as sent once to each actor (\(c.weightDType.rawValue)), kept for actors that join later"))
                items.append(Item(name: "adapter versions", bytes: 3 * adapterParams * (4 + (bf16 ? 2 : 4)),
                                  detail: "3 × \(adapterParams) adapter parameters (F32 + as sent, \(c.weightDType.rawValue)): building, current, previous"))
            } else if role == .learner {
                // LearnerServer keeps the current and the previous version for actors mid-fetch, and builds the
                // next one before dropping the oldest.
                items.append(Item(name: "weight snapshots", bytes: 3 * p * (bf16 ? 2 : 4),
                                  detail: "3 × the weights as sent to actors (\(c.weightDType.rawValue)): building, current, previous"))
            } else {
                // The assembly buffer; BF16 is then widened into a separate F32 array.
                items.append(Item(name: "weight snapshot", bytes: p * (bf16 ? 6 : 4),
                                  detail: "the weights being received (\(c.weightDType.rawValue)\(bf16 ? " + F32 widening" : ""))"))
            }
        }
        items.append(Item(name: "runtime", bytes: processBytes + Self.overheadBytes,
                          detail: "this process when it planned (executable, tokenizer, prompts) \(Self.gib(processBytes)) + BLAS buffers, allocator slack"))
        self.items = items
    }

    /// "12.34 GiB".
    public static func gib(_ bytes: Int) -> String { String(format: "%.2f GiB", Double(bytes) / Double(1 << 30)) }

    /// One line per item, largest first, then the total against the budget.
    public func report(budget: SystemMemory.Budget?) -> String {
        var settings: [String] = []
        if role != .actor { settings.append("micro_batch_tokens \(microBatchTokens)") }
        if items.contains(where: { $0.name == "KV cache" }) { settings.append("decode batch \(decodeBatch)") }
        var lines = ["memory plan (\(([role.rawValue] + settings).joined(separator: ", "))):"]
        for i in items.sorted(by: { $0.bytes > $1.bytes }) {
            func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
                let fill = String(repeating: " ", count: max(0, w - s.count))
                return left ? fill + s : s + fill
            }
            lines.append("  " + pad(i.name, 22) + pad(Self.gib(i.bytes), 11, left: true) + "  " + i.detail)
        }
        let avail = budget.map { "\(Self.gib($0.bytes)) available (\($0.source))" } ?? "available memory unknown"
        let phased = role == .singleProcess && items.contains { $0.phase != .always }
        lines.append("  estimated peak \(Self.gib(total))\(phased ? " (sampling and training take turns: the larger phase counts)" : ""); \(avail)")
        return lines.joined(separator: "\n")
    }

    /// The plan for the settings the run will use: the configured ones if they fit in `budget`; otherwise
    /// `micro_batch_tokens` and then `actor_batch_sequences` — each only if not in `fixedKeys` (set by the user in
    /// YAML or --set) — halved until the plan fits (not below one sequence / one group). The adjustments are
    /// returned as sentences to print. Throws `MemoryPlanError` naming the largest items and what would fit when
    /// nothing allowed does.
    public static func fit(role: Role, model: ModelConfig, config: TrainConfig, longestPrompt: Int, budget: Int,
                           fixedKeys: Set<String>, processBytes: Int = 0) throws -> (plan: MemoryPlan, adjustments: [String]) {
        let sequence = min(longestPrompt + config.maxNewTokens, model.maxPositionEmbeddings)
        let minMicro = max(16, sequence), minDecode = config.groupSize
        /// Halves the free settings (micro-batch first: it is the learner's big item) until the plan fits or
        /// nothing free can shrink further.
        func shrink(microFree: Bool, decodeFree: Bool) -> MemoryPlan {
            var micro = config.microBatchTokens, decode = config.actorBatchSequences
            var plan = MemoryPlan(role: role, model: model, config: config, longestPrompt: longestPrompt, processBytes: processBytes)
            while plan.total > budget {
                if microFree && micro > minMicro { micro = max(minMicro, micro / 2) }
                else if decodeFree && decode > minDecode { decode = max(minDecode, decode / 2) }
                else { break }
                plan = MemoryPlan(role: role, model: model, config: config, longestPrompt: longestPrompt,
                                  microBatchTokens: micro, decodeBatch: decode, processBytes: processBytes)
            }
            return plan
        }
        let plan = shrink(microFree: role != .actor && !fixedKeys.contains("micro_batch_tokens"),
                          decodeFree: role != .learner && !fixedKeys.contains("actor_batch_sequences"))
        if plan.total <= budget {
            var notes: [String] = []
            if plan.microBatchTokens != config.microBatchTokens {
                notes.append("micro_batch_tokens reduced from \(config.microBatchTokens) to \(plan.microBatchTokens) to fit in \(gib(budget)) (set it to keep your own value)")
            }
            if plan.decodeBatch != config.actorBatchSequences {
                notes.append("actor_batch_sequences (decode batch) reduced from \(config.actorBatchSequences) to \(plan.decodeBatch) to fit in \(gib(budget)) (set it to keep your own value)")
            }
            return (plan, notes)
        }
        // Nothing the user left free makes it fit: what would, if the fixed settings were free too?
        let relaxed = shrink(microFree: role != .actor, decodeFree: role != .learner)
        throw MemoryPlanError(plan: plan, budget: budget, suggestion: relaxed, config: config, fixedKeys: fixedKeys)
    }
}

/// A run that does not fit: names the largest items and the settings that would (or that none would).
public struct MemoryPlanError: Error, CustomStringConvertible {
    public var plan: MemoryPlan
    public var budget: Int
    /// The plan with every setting the role allows halved as far as needed (or as far as possible).
    public var suggestion: MemoryPlan
    public var config: TrainConfig
    public var fixedKeys: Set<String>

    /// What would shrink the fixed part (weights and the state that scales with them), for this run.
    var ways: [String] {
        var w = ["a smaller model"]
        let reference = plan.items.first { $0.name == "reference model" }
        if plan.role != .actor && config.lora == nil {
            w.append("lora (only adapters train: no gradients or AdamW moments for the base\(reference == nil ? "" : ", no reference copy"))")
        }
        if let reference, config.baseWeights == .f32 {
            w.append("base_weights=bf16 (the reference copy in BF16: \(MemoryPlan.gib(reference.bytes / 2)) less)")
        }
        if reference != nil && config.klBeta > 0 && config.selfCertaintySource == .policy { w.append("kl_beta=0 (no reference copy)") }
        if plan.role == .actor && config.baseWeights == .f32 { w.append("--base-weights bf16 (half the weights' memory)") }
        w.append("or a machine with more memory")
        return w
    }

    public var description: String {
        let top = plan.items.sorted { $0.bytes > $1.bytes }.prefix(3)
            .map { "\($0.name) \(MemoryPlan.gib($0.bytes))" }.joined(separator: ", ")
        var s = "\(plan.role.rawValue): estimated peak \(MemoryPlan.gib(plan.total)) (\(plan.role == .actor ? "" : "micro_batch_tokens \(plan.microBatchTokens), ")decode batch \(plan.decodeBatch)) does not fit in \(MemoryPlan.gib(budget)); largest: \(top)."
        if suggestion.total <= budget {
            var settings: [String] = []
            if suggestion.microBatchTokens != config.microBatchTokens { settings.append("micro_batch_tokens=\(suggestion.microBatchTokens)") }
            if suggestion.decodeBatch != config.actorBatchSequences { settings.append("actor_batch_sequences=\(suggestion.decodeBatch)") }
            s += " It fits (\(MemoryPlan.gib(suggestion.total))) with --set " + settings.joined(separator: " --set ")
                + (fixedKeys.isEmpty ? "." : " (you set \(fixedKeys.intersection(["micro_batch_tokens", "actor_batch_sequences"]).sorted().joined(separator: ", "))).")
        } else {
            let base = suggestion.items.filter { ["weights", "gradients", "AdamW moments", "reference model", "weight snapshot", "weight snapshots", "frozen base snapshot"].contains($0.name) }
                .reduce(0) { $0 + $1.bytes }
            s += " Even at\(plan.role == .actor ? "" : " micro_batch_tokens \(suggestion.microBatchTokens) and") decode batch \(suggestion.decodeBatch) it needs \(MemoryPlan.gib(suggestion.total)) (weights, gradients, moments\(plan.items.contains { $0.name == "reference model" } ? ", reference" : "") alone \(MemoryPlan.gib(base))): use "
                + ways.joined(separator: ", ") + "."
        }
        return s
    }
}
