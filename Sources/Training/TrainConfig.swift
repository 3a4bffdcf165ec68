import Foundation
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
    /// Stop strings (vLLM/TRL `stop`): a completion ends when its tokens end with one of these strings' token ids
    /// (tokenized with the model's tokenizer, no special tokens; matched on ids, so a spelling with other tokens
    /// does not match). Kept in the completion, like stop tokens. At most 32, each 1-64 tokens.
    public var stop: [String] = []

    // Optimizer.
    public var learningRate: Float = 3e-6
    /// "cosine", "linear" or "constant" (all with linear warmup).
    public var lrSchedule: String = "cosine"
    public var warmupRatio: Float = 0.1
    public var minLrRatio: Float = 0
    public var adamBeta1: Float = 0.9
    public var adamBeta2: Float = 0.999
    public var adamEpsilon: Float = 1e-8
    public var weightDecay: Float = 0.01
    public var maxGradNorm: Float = 1.0

    // Objective.
    /// Reward registry name: "self_certainty" (INTUITOR), "rent", "accuracy", "majority_vote", "mix:a=1,b=0.5".
    public var reward: String = "self_certainty"
    public var klBeta: Float = 0.005
    public var clipEpsilonLow: Float = 0.2
    public var clipEpsilonHigh: Float = 0.2
    /// "token_mean", "seq_mean_token_mean", "seq_mean_token_sum" or "constant:<normaliser>" (Dr. GRPO).
    public var lossAggregation: String = "token_mean"
    public var advantageEpsilon: Float = 1e-6
    /// torch.std's default (Bessel-corrected), as verl and TRL use.
    public var unbiasedStd: Bool = true
    /// Divide by the group's std (false = Dr. GRPO's mean-centring only).
    public var scaleAdvantages: Bool = true
    /// Truncated importance-sampling cap for stale rollouts (0 disables).
    public var tisCap: Float = 0
    public var ppoEpochs: Int = 1
    public var minibatches: Int = 1
    /// Tokens per forward/backward micro-batch (gradient accumulation bounds memory).
    public var microBatchTokens: Int = 4096

    // Bookkeeping.
    public var seed: UInt64 = 0
    /// Write a checkpoint every N optimizer steps (0 = only at the end).
    public var checkpointEvery: Int = 50
    public var evalEvery: Int = 0
    public var evalLimit: Int = 64

    // Distributed.
    /// Actor processes spawned by local mode.
    public var actors: Int = 2
    /// Groups sampled with weights more than this many versions old are dropped (and their task re-issued).
    public var maxLag: Int = 1
    /// Sequences an actor decodes together.
    public var actorBatchSequences: Int = 16
    public var heartbeatIntervalMs: Int = 1000
    public var heartbeatTimeoutMs: Int = 10_000
    /// Weights travel as "bf16" (half the bytes) or "f32" (exact).
    public var weightDType: String = "f32"
    public var chunkBytes: Int = 4 << 20

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, prompts, evalPrompts = "eval_prompts", outputDir = "output_dir", template
        case systemPrompt = "system_prompt", steps, promptsPerStep = "prompts_per_step", groupSize = "group_size"
        case temperature, topP = "top_p", topK = "top_k", maxNewTokens = "max_new_tokens", stop
        case learningRate = "learning_rate", lrSchedule = "lr_schedule", warmupRatio = "warmup_ratio"
        case minLrRatio = "min_lr_ratio", adamBeta1 = "adam_beta1", adamBeta2 = "adam_beta2"
        case adamEpsilon = "adam_epsilon", weightDecay = "weight_decay", maxGradNorm = "max_grad_norm"
        case reward, klBeta = "kl_beta", clipEpsilonLow = "clip_epsilon_low", clipEpsilonHigh = "clip_epsilon_high"
        case lossAggregation = "loss_aggregation", advantageEpsilon = "advantage_epsilon"
        case unbiasedStd = "unbiased_std", scaleAdvantages = "scale_advantages", tisCap = "tis_cap"
        case ppoEpochs = "ppo_epochs", minibatches, microBatchTokens = "micro_batch_tokens"
        case seed, checkpointEvery = "checkpoint_every", evalEvery = "eval_every", evalLimit = "eval_limit"
        case actors, maxLag = "max_lag", actorBatchSequences = "actor_batch_sequences"
        case heartbeatIntervalMs = "heartbeat_interval_ms", heartbeatTimeoutMs = "heartbeat_timeout_ms"
        case weightDType = "weight_dtype", chunkBytes = "chunk_bytes"
    }

    /// Missing keys keep their defaults (so a YAML file names only what it changes).
    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func get<T: Decodable>(_ k: CodingKeys, _ v: inout T) throws { if let x = try c.decodeIfPresent(T.self, forKey: k) { v = x } }
        try get(.model, &model); try get(.prompts, &prompts); try get(.outputDir, &outputDir)
        evalPrompts = try c.decodeIfPresent(String.self, forKey: .evalPrompts)
        try get(.template, &template); try get(.systemPrompt, &systemPrompt); try get(.steps, &steps)
        try get(.promptsPerStep, &promptsPerStep); try get(.groupSize, &groupSize)
        try get(.temperature, &temperature); try get(.topP, &topP); try get(.topK, &topK)
        try get(.maxNewTokens, &maxNewTokens); try get(.stop, &stop); try get(.learningRate, &learningRate)
        try get(.lrSchedule, &lrSchedule); try get(.warmupRatio, &warmupRatio); try get(.minLrRatio, &minLrRatio)
        try get(.adamBeta1, &adamBeta1); try get(.adamBeta2, &adamBeta2); try get(.adamEpsilon, &adamEpsilon)
        try get(.weightDecay, &weightDecay); try get(.maxGradNorm, &maxGradNorm); try get(.reward, &reward)
        try get(.klBeta, &klBeta); try get(.clipEpsilonLow, &clipEpsilonLow); try get(.clipEpsilonHigh, &clipEpsilonHigh)
        try get(.lossAggregation, &lossAggregation); try get(.advantageEpsilon, &advantageEpsilon)
        try get(.unbiasedStd, &unbiasedStd); try get(.scaleAdvantages, &scaleAdvantages); try get(.tisCap, &tisCap)
        try get(.ppoEpochs, &ppoEpochs); try get(.minibatches, &minibatches); try get(.microBatchTokens, &microBatchTokens)
        try get(.seed, &seed); try get(.checkpointEvery, &checkpointEvery); try get(.evalEvery, &evalEvery)
        try get(.evalLimit, &evalLimit); try get(.actors, &actors); try get(.maxLag, &maxLag)
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
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        var dict = try JSONSerialization.jsonObject(with: JSONEncoder().encode(self)) as! [String: Any]
        for a in assignments {
            guard let eq = a.firstIndex(of: "=") else {
                throw ConfigError(source: source, key: a, message: "expected key=value")
            }
            let key = a[..<eq].trimmingCharacters(in: .whitespaces)
            guard known.contains(key) else {
                throw ConfigError(source: source, key: key, message: "unknown key")
            }
            let raw = String(a[a.index(after: eq)...])
            dict[key] = (try? Yams.load(yaml: raw)).flatMap { $0 } ?? raw
        }
        let data = try JSONSerialization.data(withJSONObject: dict)
        let config: TrainConfig
        do { config = try JSONDecoder().decode(TrainConfig.self, from: data) } catch let DecodingError.typeMismatch(type, ctx) {
            throw ConfigError(source: source, key: ctx.codingPath.map(\.stringValue).joined(separator: "."),
                              message: "expected \(type)")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw ConfigError(source: source, key: ctx.codingPath.map(\.stringValue).joined(separator: "."),
                              message: ctx.debugDescription)
        }
        try config.validate(source: source)
        return config
    }

    /// Range checks; the error names the key.
    public func validate(source: String) throws {
        func check(_ ok: Bool, _ key: CodingKeys, _ why: String) throws {
            if !ok { throw ConfigError(source: source, key: key.rawValue, message: why) }
        }
        try check(steps >= 1, .steps, "must be >= 1")
        try check(promptsPerStep >= 1, .promptsPerStep, "must be >= 1")
        try check(groupSize >= 2, .groupSize, "must be >= 2 (advantages are relative to the group)")
        try check(temperature.isFinite && temperature >= 0, .temperature, "must be >= 0")
        try check(topP > 0 && topP <= 1, .topP, "must be in (0, 1]")
        try check(topK >= 0, .topK, "must be >= 0")
        try check(maxNewTokens >= 1, .maxNewTokens, "must be >= 1")
        let most = SamplingParameters.maxStopSequences
        try check(stop.count <= most, .stop, "has \(stop.count) strings, at most \(most)")
        try check(!stop.contains(""), .stop, "must not contain an empty string")
        try check(learningRate.isFinite && learningRate >= 0, .learningRate, "must be >= 0")
        try check(["cosine", "linear", "constant"].contains(lrSchedule), .lrSchedule, "must be cosine, linear or constant")
        try check(warmupRatio >= 0 && warmupRatio < 1, .warmupRatio, "must be in [0, 1)")
        try check(adamBeta1 >= 0 && adamBeta1 < 1, .adamBeta1, "must be in [0, 1)")
        try check(adamBeta2 >= 0 && adamBeta2 < 1, .adamBeta2, "must be in [0, 1)")
        try check(adamEpsilon > 0, .adamEpsilon, "must be > 0")
        try check(maxGradNorm >= 0, .maxGradNorm, "must be >= 0 (0 disables clipping)")
        try check(klBeta >= 0, .klBeta, "must be >= 0")
        try check(clipEpsilonLow > 0 && clipEpsilonLow < 1, .clipEpsilonLow, "must be in (0, 1)")
        try check(clipEpsilonHigh > 0, .clipEpsilonHigh, "must be > 0")
        try check(["token_mean", "seq_mean_token_mean", "seq_mean_token_sum"].contains(lossAggregation)
                  || (lossAggregation.hasPrefix("constant:") && Float(lossAggregation.dropFirst(9)) != nil),
                  .lossAggregation, "must be token_mean, seq_mean_token_mean, seq_mean_token_sum or constant:<number>")
        try check(ppoEpochs >= 1, .ppoEpochs, "must be >= 1")
        try check(minibatches >= 1 && minibatches <= promptsPerStep, .minibatches, "must be in 1...prompts_per_step")
        try check(microBatchTokens >= 16, .microBatchTokens, "must be >= 16")
        try check(actors >= 1, .actors, "must be >= 1")
        try check(maxLag >= 0, .maxLag, "must be >= 0")
        try check(["f32", "bf16"].contains(weightDType), .weightDType, "must be f32 or bf16")
        try check(chunkBytes >= 4096 && chunkBytes <= 64 << 20, .chunkBytes, "must be in 4 KiB...64 MiB")
        try check(heartbeatTimeoutMs > heartbeatIntervalMs, .heartbeatTimeoutMs, "must exceed heartbeat_interval_ms")
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
