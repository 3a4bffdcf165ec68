import Foundation
import Sampling
import Shared

/// SFT JSONL: `{"text"}` (the loss on every token after the first) or `{"prompt", "response"}` (the prompt is
/// formatted with the template; the loss is on the response and the EOS that ends it).
public enum SFTData {
    /// The examples of `url`, tokenized; `eos` (when given) ends every response. Errors name the file and line: not
    /// an example, a text of fewer than 2 tokens, or an example longer than `maxLength` tokens.
    public static func read(_ url: URL, formatter: PromptFormatter, eos: Int32?, maxLength: Int) throws -> [SFTExample] {
        var out: [SFTExample] = []
        for (line, l) in try JSONLines.read(SFTLine.self, from: url) {
            var ex: SFTExample
            switch l {
            case .text(let text):
                let ids = formatter.tokenizer.encode(text, addSpecialTokens: true)
                guard ids.count >= 2 else { throw DatasetError(file: url.path, line: line, message: "\"text\" has fewer than 2 tokens") }
                ex = SFTExample(prompt: [ids[0]], response: Array(ids.dropFirst()))
            case .pair(let p, let r):
                ex = SFTExample(prompt: formatter.encode(p), response: formatter.tokenizer.encode(r))
            }
            if let eos { ex.response.append(eos) }
            guard ex.prompt.count + ex.response.count <= maxLength else {
                throw DatasetError(file: url.path, line: line, message: "\(ex.prompt.count + ex.response.count) tokens exceed the model's \(maxLength) positions")
            }
            out.append(ex)
        }
        guard !out.isEmpty else { throw DatasetError(file: url.path, line: nil, message: "no examples") }
        return out
    }
}

/// One line of an SFT file.
enum SFTLine: Decodable {
    case text(String)
    case pair(prompt: String, response: String)

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        if let t = try? c.decode(String.self, forKey: AnyKey("text")) {
            self = .text(t)
        } else if let p = try? c.decode(String.self, forKey: AnyKey("prompt")),
                  let r = try? c.decode(String.self, forKey: AnyKey("response")) {
            self = .pair(prompt: p, response: r)
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "needs \"text\", or \"prompt\" and \"response\" strings"))
        }
    }
}

/// The SFT epoch order: batches of `batchSequences` consecutive examples of a seeded shuffle, reshuffled (the
/// next epoch) when fewer than a whole batch remain; the first batch starts an epoch.
public struct SFTBatches {
    public private(set) var examples: [SFTExample]
    public let batchSequences: Int
    private var rng: RandomSource
    private var position: Int
    /// Shuffles so far (the epoch being read, counting from 1).
    public private(set) var epoch = 0

    public init(_ examples: [SFTExample], batchSequences: Int, seed: UInt64) {
        self.examples = examples
        self.batchSequences = max(1, batchSequences)
        rng = RandomSource(seed: seed, stream: 0x5F7)
        position = examples.count
    }

    /// The next batch (all examples when there are fewer than `batchSequences`).
    public mutating func next() -> [SFTExample] {
        if position + batchSequences > examples.count {
            examples.seededShuffle(using: &rng)
            position = 0
            epoch += 1
        }
        defer { position += batchSequences }
        return Array(examples[position..<min(examples.count, position + batchSequences)])
    }
}

/// Progress of an SFT run, reported after each optimizer step.
public struct SFTProgress: Sendable {
    /// Steps done (1-based) of `totalSteps`.
    public var step: Int
    public var totalSteps: Int
    public var loss: Double
    public var gradNorm: Double
    /// The update was refused (non-finite loss or gradient; the weights stayed).
    public var refused: Bool
    /// Prompt + response tokens trained on so far.
    public var tokens: Int
}

extension SFTTrainer {
    /// The whole run: `totalSteps` optimizer steps over `SFTBatches` of `examples` (seeded by the config's seed),
    /// calling `progress` after each.
    public func run(_ examples: [SFTExample], progress: (SFTProgress) -> Void = { _ in }) throws {
        var batches = SFTBatches(examples, batchSequences: config.batchSequences, seed: config.seed)
        var tokens = 0
        for s in 0..<totalSteps {
            let batch = batches.next()
            tokens += batch.reduce(0) { $0 + $1.prompt.count + $1.response.count }
            let r = try trainStep(batch)
            progress(SFTProgress(step: s + 1, totalSteps: totalSteps, loss: r.loss, gradNorm: r.gradNorm,
                                 refused: r.refused, tokens: tokens))
        }
    }
}
