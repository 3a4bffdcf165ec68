import Foundation
import GRPO
import Model
import Sampling
import Tokenizer
import Yams

/// Everything a training run needs, read from YAML (snake_case keys) with CLI overrides on top.
/// Defaults are the INTUITOR paper's (verl/open-r1 settings): lr 3e-6 cosine with 10% warmup, AdamW
/// (0.9, 0.999, 1e-8, wd 0.01), β_KL 0.005 (k3, clamped ±10), clip ε 0.2, token-mean loss, G = 8,
/// temperature 0.9, one PPO epoch, advantages (r − mean)/(std + 1e-6).
public struct TrainConfig: Codable, Sendable, Equatable {
    // Data and model.
    /// Hugging Face model directory (config.json + model.safetensors [+ tokenizer.json]) or a .gguf file.
    public var model: String = ""
    /// JSONL of prompts: each line has "prompt" (or "question"), optionally "answer" (used only for reporting).
    public var prompts: String = ""
    /// Optional held-out JSONL for periodic greedy evaluation (labels used only to report).
    public var evalPrompts: String? = nil
    public var outputDir: String = "runs/intuitor"
    /// A named set of defaults applied before the file's own keys (which override it): `intuitor` = the official
    /// recipe (`TrainPreset.intuitor`). Set it in the YAML file.
    public var preset: TrainPreset? = nil
    /// Prompt formatting: `auto` (the model's own chat template, e.g. Qwen2.5's ChatML with its default system
    /// message; `raw` when the model has none), `chatml` (rlif's fixed ChatML), `plain` or `raw` (see `TemplateChoice`).
    public var template: TemplateChoice = .auto
    /// A named system prompt ("math", "none") or the literal text.
    public var systemPrompt: String = "math"

    // Schedule.
    /// Optimizer steps in the run.
    public var steps: Int = 100
    /// Prompts (groups) per optimizer step.
    public var promptsPerStep: Int = 8
    public var groupSize: Int = 8

    // Sampling.
    public var temperature: Float = 0.9
    public var topP: Float = 1.0
    public var topK: Int = 0
    public var maxNewTokens: Int = 256
    /// Prompts (after the template, in tokens) longer than this are skipped at load, each named with its
    /// file:line and counted (0 = only those that leave no room for one new token in the model's context).
    public var maxPromptTokens: Int = 0
    /// Stop strings (vLLM/TRL `stop`): a completion ends when its tokens end with one of these strings' token ids
    /// (tokenized with the model's tokenizer, no special tokens; matched on ids, so a spelling with other tokens
    /// does not match). Kept in the completion, like stop tokens. At most 32, each 1-64 tokens.
    public var stop: [String] = []

    // Optimizer.
    public var learningRate: Float = 3e-6
    /// `cosine`, `linear` or `constant` (all with linear warmup).
    public var lrSchedule: LRScheduleChoice = .cosine
    public var warmupRatio: Float = 0.1
    public var minLrRatio: Float = 0
    public var adamBeta1: Float = 0.9
    public var adamBeta2: Float = 0.999
    public var adamEpsilon: Float = 1e-8
    public var weightDecay: Float = 0.01
    public var maxGradNorm: Float = 1.0

    // Objective.
    /// Reward registry name: "self_certainty" (INTUITOR), "rent", "accuracy", "majority_vote", or a mix
    /// "mix:self_certainty=1,accuracy=0.5" combined as the official code does: w·z(self-certainty) + z(Σ w_k·r_k)
    /// over the other rewards (`WeightedMixReward`).
    public var reward: String = "self_certainty"
    public var klBeta: Float = 0.005
    public var clipEpsilonLow: Float = 0.2
    public var clipEpsilonHigh: Float = 0.2
    /// `token_mean`, `seq_mean_token_mean`, `seq_mean_token_sum` or `constant:<normaliser>` (Dr. GRPO); see
    /// `LossAggregation`.
    public var lossAggregation: LossAggregation = .tokenMean
    public var advantageEpsilon: Float = 1e-6
    /// torch.std's default (Bessel-corrected), as verl and TRL use.
    public var unbiasedStd: Bool = true
    /// Divide by the group's std (false = Dr. GRPO's mean-centring only).
    public var scaleAdvantages: Bool = true
    /// When the learner recomputes a group's per-token self-certainty and behaviour log-probs with its current
    /// weights before rewards: `auto` for groups sampled with older weights (the paper's reward is the current
    /// policy's self-certainty), `always`, or `never` (trust the actor's numbers).
    public var recomputeSelfCertainty: RecomputeMode = .auto
    /// Whose self-certainty is the reward: `policy` (INTUITOR: the current policy's) or `reference` (the frozen
    /// initial model's — the paper's offline ablation, which it shows gets hacked).
    public var selfCertaintySource: SelfCertaintySource = .policy
    /// Fraction (0–1) of on-policy groups (sampled with the weights the step trains) whose per-token
    /// self-certainty and log-probs the learner recomputes with its own forward before training: an actor whose
    /// values disagree by more than `verify_tolerance` is named, its group dropped and the actor banned.
    public var verifyRewards: Double = 0
    /// Largest mean absolute per-token difference (nats) between an actor's self-certainty / log-probs and the
    /// learner's recomputation that still counts as agreement (bf16 weights and a different batch order on the
    /// actor give ~1e-3; a made-up or rescaled value is far larger).
    public var verifyTolerance: Float = 0.05
    /// Truncated importance-sampling cap for stale rollouts (0 disables).
    public var tisCap: Float = 0
    public var ppoEpochs: Int = 1
    public var minibatches: Int = 1
    /// Tokens per forward/backward micro-batch (gradient accumulation bounds memory). Unless set in the YAML or
    /// with --set, the memory plan (`MemoryPlan`) halves it until the run fits.
    public var microBatchTokens: Int = 4096
    /// Keep only each decoder layer's input during the training forward and recompute the layer inside the
    /// backward: saves the other activations of all but one layer for ≈ one more forward of the layers.
    public var activationCheckpointing: Bool = false
    /// LoRA (`lora: {rank, alpha, target_modules, dropout}`): the base weights are frozen and only the adapters
    /// are trained (see `LoRAConfig` for the defaults); nil = full fine-tuning.
    public var lora: LoRAConfig? = nil
    /// How the frozen weights' matrices are held (`base_weights: f32 | bf16`): bf16 halves their memory
    /// (widened to F32 inside the kernels; each weight rounded to BF16 once at load). Frozen are the LoRA base, or
    /// in full fine-tuning the initial model's copy (`keepsInitialModel`); trained weights are never BF16
    /// (`policyWeights`). Local mode's actors sample with BF16 weights too.
    public var baseWeights: BaseWeights = .f32

    /// The run needs the frozen initial model: as the KL reference (β > 0) and/or as the offline reward's model
    /// (`self_certainty_source: reference`). Full fine-tuning keeps a copy of it; LoRA uses its own base.
    public var keepsInitialModel: Bool { klBeta > 0 || selfCertaintySource == .reference }

    /// How the trained model's matrices are held: F32 in full fine-tuning (they train), `base_weights` for a LoRA
    /// run's frozen base.
    public var policyWeights: BaseWeights { lora == nil ? .f32 : baseWeights }

    // Bookkeeping.
    public var seed: UInt64 = 0
    /// Write a checkpoint every N optimizer steps (0 = only at the end).
    public var checkpointEvery: Int = 50
    /// Keep only the newest N `checkpoint-*` directories (the one `latest` names always among them), like TRL's
    /// `save_total_limit`; 0 keeps every checkpoint, TRL's default (`save_total_limit=None`).
    public var keepCheckpoints: Int = 0
    public var evalEvery: Int = 0
    public var evalLimit: Int = 64
    /// Every N steps a few completion texts go to samples.jsonl (0 = never).
    public var logSamplesEvery: Int = 10
    /// Every metrics record also goes to a TensorBoard event file under `<output_dir>/tb/`.
    public var tensorboard: Bool = true

    // Distributed.
    /// Actor processes spawned by local mode.
    public var actors: Int = 2
    /// Groups sampled with weights more than this many versions old are dropped (and their task re-issued).
    public var maxLag: Int = 1
    /// Sequences an actor decodes together (unless set, the memory plan may lower it to fit).
    public var actorBatchSequences: Int = 16
    public var heartbeatIntervalMs: Int = 1000
    public var heartbeatTimeoutMs: Int = 10_000
    /// Weights travel as `bf16` (half the bytes) or `f32` (exact).
    public var weightDType: WeightDType = .f32
    public var chunkBytes: Int = 4 << 20

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, prompts, evalPrompts = "eval_prompts", outputDir = "output_dir", template, preset
        case systemPrompt = "system_prompt", steps, promptsPerStep = "prompts_per_step", groupSize = "group_size"
        case temperature, topP = "top_p", topK = "top_k", maxNewTokens = "max_new_tokens", stop
        case maxPromptTokens = "max_prompt_tokens"
        case learningRate = "learning_rate", lrSchedule = "lr_schedule", warmupRatio = "warmup_ratio"
        case minLrRatio = "min_lr_ratio", adamBeta1 = "adam_beta1", adamBeta2 = "adam_beta2"
        case adamEpsilon = "adam_epsilon", weightDecay = "weight_decay", maxGradNorm = "max_grad_norm"
        case reward, klBeta = "kl_beta", clipEpsilonLow = "clip_epsilon_low", clipEpsilonHigh = "clip_epsilon_high"
        case lossAggregation = "loss_aggregation", advantageEpsilon = "advantage_epsilon"
        case unbiasedStd = "unbiased_std", scaleAdvantages = "scale_advantages", tisCap = "tis_cap"
        case recomputeSelfCertainty = "recompute_self_certainty"
        case selfCertaintySource = "self_certainty_source"
        case verifyRewards = "verify_rewards", verifyTolerance = "verify_tolerance"
        case ppoEpochs = "ppo_epochs", minibatches, microBatchTokens = "micro_batch_tokens"
        case activationCheckpointing = "activation_checkpointing", lora, baseWeights = "base_weights"
        case seed, checkpointEvery = "checkpoint_every", keepCheckpoints = "keep_checkpoints", evalEvery = "eval_every", evalLimit = "eval_limit"
        case logSamplesEvery = "log_samples_every", tensorboard
        case actors, maxLag = "max_lag", actorBatchSequences = "actor_batch_sequences"
        case heartbeatIntervalMs = "heartbeat_interval_ms", heartbeatTimeoutMs = "heartbeat_timeout_ms"
        case weightDType = "weight_dtype", chunkBytes = "chunk_bytes"
    }

    /// Missing keys keep their defaults (so a YAML file names only what it changes).
    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func get<T: Decodable>(_ k: CodingKeys, _ v: inout T) throws { if let x = try c.decodeIfPresent(T.self, forKey: k) { v = x } }
        // The preset first: every key the file names overrides it.
        preset = try c.decodeIfPresent(TrainPreset.self, forKey: .preset)
        preset?.apply(to: &self)
        try get(.model, &model); try get(.prompts, &prompts); try get(.outputDir, &outputDir)
        evalPrompts = try c.decodeIfPresent(String.self, forKey: .evalPrompts)
        try get(.template, &template); try get(.systemPrompt, &systemPrompt); try get(.steps, &steps)
        try get(.promptsPerStep, &promptsPerStep); try get(.groupSize, &groupSize)
        try get(.temperature, &temperature); try get(.topP, &topP); try get(.topK, &topK)
        try get(.maxNewTokens, &maxNewTokens); try get(.maxPromptTokens, &maxPromptTokens); try get(.stop, &stop); try get(.learningRate, &learningRate)
        try get(.lrSchedule, &lrSchedule); try get(.warmupRatio, &warmupRatio); try get(.minLrRatio, &minLrRatio)
        try get(.adamBeta1, &adamBeta1); try get(.adamBeta2, &adamBeta2); try get(.adamEpsilon, &adamEpsilon)
        try get(.weightDecay, &weightDecay); try get(.maxGradNorm, &maxGradNorm); try get(.reward, &reward)
        try get(.klBeta, &klBeta); try get(.clipEpsilonLow, &clipEpsilonLow); try get(.clipEpsilonHigh, &clipEpsilonHigh)
        try get(.lossAggregation, &lossAggregation); try get(.advantageEpsilon, &advantageEpsilon)
        try get(.unbiasedStd, &unbiasedStd); try get(.scaleAdvantages, &scaleAdvantages); try get(.tisCap, &tisCap)
        try get(.recomputeSelfCertainty, &recomputeSelfCertainty)
        try get(.selfCertaintySource, &selfCertaintySource)
        try get(.verifyRewards, &verifyRewards); try get(.verifyTolerance, &verifyTolerance)
        try get(.ppoEpochs, &ppoEpochs); try get(.minibatches, &minibatches); try get(.microBatchTokens, &microBatchTokens)
        try get(.activationCheckpointing, &activationCheckpointing)
        lora = try c.decodeIfPresent(LoRAConfig.self, forKey: .lora)
        try get(.baseWeights, &baseWeights)
        try get(.seed, &seed); try get(.checkpointEvery, &checkpointEvery); try get(.keepCheckpoints, &keepCheckpoints)
        try get(.evalEvery, &evalEvery)
        try get(.evalLimit, &evalLimit); try get(.logSamplesEvery, &logSamplesEvery); try get(.tensorboard, &tensorboard); try get(.actors, &actors); try get(.maxLag, &maxLag)
        try get(.actorBatchSequences, &actorBatchSequences); try get(.heartbeatIntervalMs, &heartbeatIntervalMs)
        try get(.heartbeatTimeoutMs, &heartbeatTimeoutMs); try get(.weightDType, &weightDType); try get(.chunkBytes, &chunkBytes)
    }

    /// Parses YAML, rejecting unknown keys (a typo must not silently fall back to a default) and naming the
    /// file and key of any error; then validates ranges.
    public static func load(yaml text: String, source: String) throws -> TrainConfig {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw ConfigError(source: source, key: nil, message: "not valid YAML: \(error)")
        }
        if let mapping = node?.mapping {
            let known = Set(CodingKeys.allCases.map(\.rawValue))
            for (k, _) in mapping {
                let key = k.string ?? "\(k)"
                if !known.contains(key) {
                    let near = known.min { levenshtein($0, key) < levenshtein($1, key) } ?? ""
                    throw ConfigError(source: source, key: key, message: "unknown key (did you mean '\(near)'?)")
                }
            }
        } else if node != nil {
            throw ConfigError(source: source, key: nil, message: "expected a mapping of keys to values at the top level")
        }
        // Keys inside `lora:` are checked the same way (a non-mapping value is the decoder's type error).
        if let m = node?.mapping?[Node(CodingKeys.lora.rawValue)]?.mapping {
            let known = Set(LoRAConfig.CodingKeys.allCases.map(\.rawValue))
            for (k, _) in m {
                let key = k.string ?? "\(k)"
                if !known.contains(key) {
                    let near = known.min { levenshtein($0, key) < levenshtein($1, key) } ?? ""
                    throw ConfigError(source: source, key: "lora.\(key)", message: "unknown key (did you mean '\(near)'?)")
                }
            }
        }
        let config: TrainConfig
        do { config = try YAMLDecoder().decode(TrainConfig.self, from: text.isEmpty ? "{}" : text) } catch let DecodingError.typeMismatch(type, ctx) {
            throw ConfigError(source: source, key: ctx.codingPath.map(\.stringValue).joined(separator: "."),
                              message: "expected \(type): \(ctx.debugDescription)")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw ConfigError(source: source, key: ctx.codingPath.map(\.stringValue).joined(separator: "."),
                              message: ctx.debugDescription)
        } catch {
            throw ConfigError(source: source, key: nil, message: "\(error)")
        }
        try config.validate(source: source)
        return config
    }

    /// The top-level keys a YAML config sets (empty if it does not parse): the settings the user chose.
    public static func keys(inYAML text: String) -> Set<String> {
        guard let mapping = (try? Yams.compose(yaml: text))??.mapping else { return [] }
        return Set(mapping.compactMap { $0.key.string })
    }

    public static func load(contentsOf url: URL) throws -> TrainConfig {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw ConfigError(source: url.path, key: nil, message: "cannot read: \(error.localizedDescription)")
        }
        return try load(yaml: text, source: url.path)
    }

    /// Applies `key=value` overrides (same keys as the YAML; values parsed as YAML scalars), e.g. from
    /// `--set learning_rate=1e-5`. Unknown keys and ill-typed values are errors naming the key.
    public func overriding(_ assignments: [String], source: String = "--set") throws -> TrainConfig {
        if assignments.isEmpty { return self }
        // Through YAML, not JSON: JSON cannot carry .inf/.nan, and one path means one set of checks (unknown
        // keys with did-you-mean, types, ranges) for the file and the flag alike.
        guard var mapping = try Yams.compose(yaml: YAMLEncoder().encode(self))?.mapping else {
            throw ConfigError(source: source, key: nil, message: "internal: the configuration did not encode as a YAML mapping")
        }
        for a in assignments {
            guard let eq = a.firstIndex(of: "=") else {
                throw ConfigError(source: source, key: a, message: "expected key=value")
            }
            let key = a[..<eq].trimmingCharacters(in: .whitespaces)
            let raw = String(a[a.index(after: eq)...])
            // A value YAML reads as a mapping ("You are: a solver") is meant as text.
            var value = (try? Yams.compose(yaml: raw)).flatMap { $0 } ?? Node(raw, Tag(.str), .doubleQuoted)
            if value.mapping != nil && key != CodingKeys.lora.rawValue { value = Node(raw, Tag(.str), .doubleQuoted) }
            // `lora.rank=16`: one key of the nested mapping (created with defaults when absent).
            if key.hasPrefix(CodingKeys.lora.rawValue + ".") {
                let sub = String(key.dropFirst(CodingKeys.lora.rawValue.count + 1))
                var inner = mapping[Node(CodingKeys.lora.rawValue)]?.mapping ?? Node.Mapping([])
                inner[Node(sub)] = value
                mapping[Node(CodingKeys.lora.rawValue)] = Node.mapping(inner)
                continue
            }
            mapping[Node(key)] = value
        }
        return try TrainConfig.load(yaml: Yams.serialize(node: Node.mapping(mapping)), source: source)
    }

    /// Range checks; the error names the key.
    public func validate(source: String) throws {
        func check(_ ok: Bool, _ key: CodingKeys, _ why: String) throws {
            if !ok { throw ConfigError(source: source, key: key.rawValue, message: why) }
        }
        // Every number must be finite (YAML's .inf / .nan parse as floats): named before any range check.
        let floats: [(CodingKeys, Float)] = [
            (.temperature, temperature), (.topP, topP), (.learningRate, learningRate), (.warmupRatio, warmupRatio),
            (.minLrRatio, minLrRatio), (.adamBeta1, adamBeta1), (.adamBeta2, adamBeta2), (.adamEpsilon, adamEpsilon),
            (.weightDecay, weightDecay), (.maxGradNorm, maxGradNorm), (.klBeta, klBeta),
            (.clipEpsilonLow, clipEpsilonLow), (.clipEpsilonHigh, clipEpsilonHigh),
            (.advantageEpsilon, advantageEpsilon), (.tisCap, tisCap), (.verifyTolerance, verifyTolerance),
            (.verifyRewards, Float(verifyRewards)),
        ]
        for (k, v) in floats where !v.isFinite { try check(false, k, "must be a finite number, got \(v)") }
        try check(steps >= 1, .steps, "must be >= 1")
        try check(promptsPerStep >= 1, .promptsPerStep, "must be >= 1")
        try check(groupSize >= 2, .groupSize, "must be >= 2 (advantages are relative to the group)")
        // Training samples: at temperature 0 every completion of a group is the same greedy one, advantages are
        // all zero and the gradient is 0 for the whole run.
        try check(temperature > 0, .temperature, "must be > 0 for sampling (at 0 a group's completions are identical and nothing is learned)")
        try check(topP > 0 && topP <= 1, .topP, "must be in (0, 1]")
        try check(topK >= 0, .topK, "must be >= 0")
        try check(maxNewTokens >= 1, .maxNewTokens, "must be >= 1")
        try check(maxPromptTokens >= 0, .maxPromptTokens, "must be >= 0 (0 = limited by the model's context only)")
        let most = SamplingParameters.maxStopSequences
        try check(stop.count <= most, .stop, "has \(stop.count) strings, at most \(most)")
        try check(!stop.contains(""), .stop, "must not contain an empty string")
        try check(learningRate >= 0, .learningRate, "must be >= 0")
        try check(minLrRatio >= 0 && minLrRatio <= 1, .minLrRatio, "must be in [0, 1]")
        try check(weightDecay >= 0, .weightDecay, "must be >= 0")
        try check(advantageEpsilon >= 0, .advantageEpsilon, "must be >= 0")
        try check(tisCap >= 0, .tisCap, "must be >= 0 (0 disables)")
        try check(verifyRewards >= 0 && verifyRewards <= 1, .verifyRewards, "must be in [0, 1] (the fraction of groups the learner re-scores)")
        try check(verifyTolerance > 0, .verifyTolerance, "must be > 0")
        try check(checkpointEvery >= 0, .checkpointEvery, "must be >= 0 (0 = only at the end)")
        try check(evalEvery >= 0, .evalEvery, "must be >= 0 (0 = never)")
        try check(evalLimit >= 1, .evalLimit, "must be >= 1")
        try check(logSamplesEvery >= 0, .logSamplesEvery, "must be >= 0 (0 = never)")
        try check(actorBatchSequences >= 1, .actorBatchSequences, "must be >= 1")
        try check(heartbeatIntervalMs >= 1, .heartbeatIntervalMs, "must be >= 1")
        if let name = SystemPromptName.unknownName(systemPrompt) {
            try check(false, .systemPrompt, name)
        }
        try check(warmupRatio >= 0 && warmupRatio < 1, .warmupRatio, "must be in [0, 1)")
        try check(adamBeta1 >= 0 && adamBeta1 < 1, .adamBeta1, "must be in [0, 1)")
        try check(adamBeta2 >= 0 && adamBeta2 < 1, .adamBeta2, "must be in [0, 1)")
        try check(adamEpsilon > 0, .adamEpsilon, "must be > 0")
        try check(maxGradNorm >= 0, .maxGradNorm, "must be >= 0 (0 disables clipping)")
        try check(klBeta >= 0, .klBeta, "must be >= 0")
        try check(clipEpsilonLow > 0 && clipEpsilonLow < 1, .clipEpsilonLow, "must be in (0, 1)")
        try check(clipEpsilonHigh > 0, .clipEpsilonHigh, "must be > 0")
        try check(ppoEpochs >= 1, .ppoEpochs, "must be >= 1")
        try check(minibatches >= 1 && minibatches <= promptsPerStep, .minibatches, "must be in 1...prompts_per_step")
        try check(microBatchTokens >= 16, .microBatchTokens, "must be >= 16")
        try check(keepCheckpoints >= 0, .keepCheckpoints, "must be >= 0 (0 keeps every checkpoint)")
        try check(actors >= 1, .actors, "must be >= 1")
        try check(maxLag >= 0, .maxLag, "must be >= 0")
        try check(chunkBytes >= 4096 && chunkBytes <= 64 << 20, .chunkBytes, "must be in 4 KiB...64 MiB")
        try check(heartbeatTimeoutMs > heartbeatIntervalMs, .heartbeatTimeoutMs, "must exceed heartbeat_interval_ms")
        // bf16 holds frozen weights: the LoRA base, or in full fine-tuning the frozen reference copy (the policy
        // trains in F32); a full fine-tuning run without a reference has nothing frozen to hold.
        try check(baseWeights == .f32 || lora != nil || keepsInitialModel, .baseWeights,
                  "bf16 holds frozen weights — the LoRA base, or the reference copy of full fine-tuning — and this run has neither (no lora section, kl_beta 0, self_certainty_source policy); the trained weights are always F32")
        if let lora {
            do { try lora.validate() } catch let e as LoRAConfigError {
                throw ConfigError(source: source, key: "lora.\(e.key)", message: e.message)
            }
        }
    }
}

/// Named defaults for a run config.
public enum TrainPreset: String, Codable, Sendable, CaseIterable {
    /// The official INTUITOR recipe (sunblaze-ucb/Intuitor, open-r1-intuitor and verl-intuitor): the recipe's
    /// system prompt, the model's own chat template, temperature 0.9, lr 3e-6 cosine with warmup 0.1, AdamW
    /// (0.9, 0.999, 1e-8, wd 0.01), β 0.005 (k3), clip 0.2, G 8 (the paper uses 7–8), grad clip 1.0, token-mean loss,
    /// prompts up to 512 tokens (longer ones skipped and logged), completions up to 3072 tokens, 128 prompts per
    /// optimizer step (reached by token-bounded micro-batches: gradient accumulation), self-certainty of the
    /// current policy. A CPU run states its smaller budget by overriding keys after the preset.
    case intuitor

    public init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let p = TrainPreset(rawValue: raw) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "unknown preset '\(raw)'; known: \(TrainPreset.allCases.map(\.rawValue).joined(separator: ", "))"))
        }
        self = p
    }

    public func apply(to c: inout TrainConfig) {
        switch self {
        case .intuitor:
            c.systemPrompt = "intuitor-recipe"
            c.template = .auto
            c.temperature = 0.9
            c.topP = 1
            c.topK = 0
            c.learningRate = 3e-6
            c.lrSchedule = .cosine
            c.warmupRatio = 0.1
            c.adamBeta1 = 0.9; c.adamBeta2 = 0.999; c.adamEpsilon = 1e-8; c.weightDecay = 0.01
            c.klBeta = 0.005
            c.clipEpsilonLow = 0.2; c.clipEpsilonHigh = 0.2
            c.groupSize = 8
            c.maxGradNorm = 1.0
            c.lossAggregation = .tokenMean
            c.maxPromptTokens = 512
            c.maxNewTokens = 3072
            c.promptsPerStep = 128
            c.reward = "self_certainty"
            c.recomputeSelfCertainty = .auto
        }
    }
}

/// `self_certainty_source`.
public enum SelfCertaintySource: String, ConfigChoice {
    case policy, reference

    public init(from decoder: Decoder) throws { self = try Self.decodeChoice(decoder) }
}

/// `recompute_self_certainty`.
public enum RecomputeMode: String, ConfigChoice {
    case auto, always, never

    public init(from decoder: Decoder) throws { self = try Self.decodeChoice(decoder) }

    /// Whether a group sampled with `sampled` is re-scored when the learner's weights are version `current`.
    public func applies(sampled: UInt64, current: UInt64) -> Bool {
        switch self {
        case .auto: return sampled < current
        case .always: return true
        case .never: return false
        }
    }
}

/// A setting that is one of a few names (decoded once, when the config is read; a bad value is an error listing
/// the names).
public protocol ConfigChoice: RawRepresentable, CaseIterable, Codable, Sendable where RawValue == String {}

extension ConfigChoice {
    /// The value of a single string, or an error "must be a, b or c, got 'x'".
    public static func decodeChoice(_ decoder: Decoder) throws -> Self {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let v = Self(rawValue: raw) else {
            let names = allCases.map(\.rawValue)
            let list = names.count > 1 ? names.dropLast().joined(separator: ", ") + " or " + names.last! : names.joined()
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "must be \(list), got '\(raw)'"))
        }
        return v
    }
}

/// `lr_schedule`: the learning-rate shape after the linear warmup.
public enum LRScheduleChoice: String, ConfigChoice {
    case cosine, linear, constant

    public init(from decoder: Decoder) throws { self = try Self.decodeChoice(decoder) }

    /// The schedule (cosine: half a cycle down to `minLRRatio` of the peak).
    public func kind(minLRRatio: Double) -> LRSchedule.Kind {
        switch self {
        case .cosine: .cosine(numCycles: 0.5, minLRRatio: minLRRatio)
        case .linear: .linear
        case .constant: .constant
        }
    }
}

/// `weight_dtype`: how weight snapshots travel to actors.
public enum WeightDType: String, ConfigChoice {
    case f32, bf16

    public init(from decoder: Decoder) throws { self = try Self.decodeChoice(decoder) }
}

/// `loss_aggregation` in a config: `token_mean`, `seq_mean_token_mean`, `seq_mean_token_sum` or `constant:<D>`
/// (D > 0, finite).
extension LossAggregation: Codable {
    /// The config spelling (`constant:<D>` with D as Swift prints it).
    public var configName: String {
        switch self {
        case .tokenMean: "token_mean"
        case .seqMeanTokenMean: "seq_mean_token_mean"
        case .seqMeanTokenSum: "seq_mean_token_sum"
        case .constantNormalizer(let d): "constant:\(d)"
        }
    }

    /// The aggregation a config spelling names, nil for anything else.
    public init?(configName s: String) {
        switch s {
        case "token_mean": self = .tokenMean
        case "seq_mean_token_mean": self = .seqMeanTokenMean
        case "seq_mean_token_sum": self = .seqMeanTokenSum
        default:
            guard s.hasPrefix("constant:"), let d = Double(s.dropFirst(9)), d.isFinite, d > 0 else { return nil }
            self = .constantNormalizer(d)
        }
    }

    public init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let v = LossAggregation(configName: raw) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "must be token_mean, seq_mean_token_mean, seq_mean_token_sum or constant:<number > 0>, got '\(raw)'"))
        }
        self = v
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(configName)
    }
}

/// `system_prompt` is a known name or literal text. A single word that is not a known name is almost surely a
/// typo of one (`--set system_prompt=mathh` used to become the literal system message "mathh").
enum SystemPromptName {
    /// The error message for a name-like value that names no prompt, nil when the value is fine.
    static func unknownName(_ value: String) -> String? {
        let known = SystemPrompt.all.keys.sorted()
        if SystemPrompt.all[value] != nil { return nil }
        let nameLike = !value.isEmpty && value.count <= 32
            && value.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
        guard nameLike else { return nil }
        let near = known.min { levenshtein($0, value) < levenshtein($1, value) } ?? ""
        return "unknown system prompt name '\(value)' (did you mean '\(near)'? known: \(known.joined(separator: ", "))); literal text needs at least one space"
    }
}

/// A configuration problem, naming the file (or flag) and the key.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var source: String
    public var key: String?
    public var message: String
    public var description: String { "\(source): " + (key.map { "\($0): " } ?? "") + message }
    public init(source: String, key: String?, message: String) {
        self.source = source
        self.key = key
        self.message = message
    }
}

func levenshtein(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    var prev = Array(0...b.count), cur = prev
    for i in 1...a.count {
        cur[0] = i
        for j in stride(from: 1, through: b.count, by: 1) {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[b.count]
}
