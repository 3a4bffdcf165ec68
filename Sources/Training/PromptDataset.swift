import Foundation
import Sampling
import Shared

/// One training or evaluation prompt.
public struct PromptRecord: Sendable, Hashable, Codable {
    /// "<file stem>:<line>" unless the line has an "id".
    public var id: String
    public var text: String
    /// Reference answer, when the data has one. Used only to report accuracy, never as a training signal
    /// (unless the chosen reward is the verifiable-accuracy baseline).
    public var answer: String?

    public init(id: String, text: String, answer: String?) {
        self.id = id
        self.text = text
        self.answer = answer
    }
}

/// Where a run is in its data: the epoch and the position within that epoch's shuffled order.
public struct DataCursor: Sendable, Hashable, Codable {
    public var epoch: Int = 0
    public var index: Int = 0
    public init(epoch: Int = 0, index: Int = 0) { self.epoch = epoch; self.index = index }
}

/// A JSONL prompt set, visited in a seeded random order per epoch; every prompt is visited exactly once per epoch.
public struct PromptDataset: Sendable {
    public let records: [PromptRecord]
    public let seed: UInt64
    public let source: String

    public init(records: [PromptRecord], seed: UInt64, source: String = "<memory>") {
        self.records = records
        self.seed = seed
        self.source = source
    }

    /// Reads lines of `{"prompt": ...}` or `{"question": ..., "answer": ...}` (GSM8K's format; `answer` and `id`
    /// may be strings or numbers). Blank lines are skipped; anything else that is not such an object is an error
    /// naming the file and line (`JSONLines`).
    public init(contentsOf url: URL, seed: UInt64) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw DatasetError(file: url.path, line: nil, message: "cannot read: \(error.localizedDescription)")
        }
        try self.init(jsonLines: data, file: url, seed: seed)
    }

    /// The same from bytes already read; `file` names them in errors and its stem makes the default ids.
    public init(jsonLines data: Data, file url: URL, seed: UInt64) throws {
        let stem = url.deletingPathExtension().lastPathComponent
        let out = try JSONLines.read(PromptLine.self, data: data, file: url.path).map { line, p in
            PromptRecord(id: p.id ?? "\(stem):\(line)", text: p.text, answer: p.answer)
        }
        guard !out.isEmpty else { throw DatasetError(file: url.path, line: nil, message: "no prompts") }
        self.init(records: out, seed: seed, source: url.path)
    }

    public var count: Int { records.count }

    /// The dataset without the prompts longer than `maxTokens` (as `tokens` counts them: after the template),
    /// those skipped with their lengths, in file order, and the longest kept prompt's length (for the memory plan,
    /// so the prompts are tokenized once). Done once at load so that a prompt that cannot be sampled never reaches an
    /// actor (it used to be re-issued forever). Fails when nothing is left.
    public func keeping(maxTokens: Int, tokens: (PromptRecord) -> Int) throws
        -> (kept: PromptDataset, skipped: [(record: PromptRecord, tokens: Int)], longest: Int) {
        var kept: [PromptRecord] = [], skipped: [(record: PromptRecord, tokens: Int)] = []
        var longest = 0
        for r in records {
            let n = tokens(r)
            if n > maxTokens { skipped.append((r, n)) } else { kept.append(r); longest = max(longest, n) }
        }
        guard !kept.isEmpty else {
            throw DatasetError(file: source, line: nil,
                               message: "every prompt is longer than \(maxTokens) tokens (the shortest has \(skipped.map(\.tokens).min() ?? 0))")
        }
        return (PromptDataset(records: kept, seed: seed, source: source), skipped, longest)
    }

    /// The visiting order of `epoch` (a Fisher–Yates shuffle seeded by (seed, epoch)).
    public func order(epoch: Int) -> [Int] {
        var idx = Array(0..<records.count)
        var rng = RandomSource(seed: seed, stream: 0x5EED_0000 &+ UInt64(epoch))
        idx.seededShuffle(using: &rng)
        return idx
    }

    /// The cursor after `k` prompts from the start (epochs wrap exactly as `next` wraps them), so step s of a
    /// run always sees prompts s·P ..< (s+1)·P whatever happened before (restarts, re-issued tasks).
    public func cursor(afterPrompts k: Int) -> DataCursor {
        DataCursor(epoch: k / records.count, index: k % records.count)
    }

    /// The prompts of training step `step` with `perStep` prompts per step.
    public func prompts(step: Int, perStep: Int) -> [PromptRecord] {
        var c = cursor(afterPrompts: step * perStep)
        return next(perStep, cursor: &c)
    }

    /// The next `count` prompts from `cursor`, wrapping into the next epoch; advances the cursor.
    public func next(_ count: Int, cursor: inout DataCursor) -> [PromptRecord] {
        var out: [PromptRecord] = []
        out.reserveCapacity(count)
        var ord = order(epoch: cursor.epoch)
        while out.count < count {
            if cursor.index >= ord.count {
                cursor.epoch += 1
                cursor.index = 0
                ord = order(epoch: cursor.epoch)
            }
            out.append(records[ord[cursor.index]])
            cursor.index += 1
        }
        return out
    }
}

public struct DatasetError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int?
    public var message: String
    public var description: String { "\(file)" + (line.map { ":\($0)" } ?? "") + ": \(message)" }
    public init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }
}

/// One line of a prompts file: `prompt` (or GSM8K's `question`), optional `answer` and `id` (strings or numbers).
struct PromptLine: Decodable {
    var text: String
    var answer: String?
    var id: String?

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        guard let t = (try? c.decode(String.self, forKey: AnyKey("prompt")))
                ?? (try? c.decode(String.self, forKey: AnyKey("question"))) else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "needs a string field \"prompt\" or \"question\""))
        }
        text = t
        answer = try c.stringOrNumber("answer")
        id = try c.stringOrNumber("id")
    }
}
