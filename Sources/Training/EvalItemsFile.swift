import Foundation
import SafeTensors

/// A resumable evaluation's items on disk: the first line records the settings, then one `EvalReport.Item` per
/// line, appended as each chunk is scored. Opening an existing file with other settings is an error (items of two
/// different evaluations must not mix); a torn last line (a kill mid-write) is dropped. Tests: `EvalItemsFileTests`.
public final class EvalItemsFile {
    public struct Settings: Codable, Equatable, Sendable {
        public var kind = "eval_settings"
        public var model: String
        public var data: String
        public var format: String
        public var limit: Int?
        public var maxNewTokens: Int
        public var template: String
        public var systemPrompt: String

        enum CodingKeys: String, CodingKey {
            case kind, model, data, format, limit, maxNewTokens = "max_new_tokens", template, systemPrompt = "system_prompt"
        }

        public init(model: String, data: String, format: String, limit: Int?, maxNewTokens: Int, template: String,
                    systemPrompt: String) {
            self.model = model; self.data = data; self.format = format; self.limit = limit
            self.maxNewTokens = maxNewTokens; self.template = template; self.systemPrompt = systemPrompt
        }
    }

    public let url: URL
    private let log: MetricsLog

    private init(url: URL, log: MetricsLog) { self.url = url; self.log = log }

    /// The settings and items of an existing, non-empty file (nil when absent or empty); a torn last line is
    /// left out, anything else that does not decode is an error naming the line.
    public static func read(_ url: URL) throws -> (settings: Settings, items: [EvalReport.Item], lines: [Data])? {
        guard let data = FileManager.default.contents(atPath: url.path), !data.isEmpty else { return nil }
        let dec = JSONDecoder()
        var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).map { Data($0) }
        if data.last != UInt8(ascii: "\n"), !lines.isEmpty { lines.removeLast() }
        guard let first = lines.first, let found = try? dec.decode(Settings.self, from: first) else {
            throw DatasetError(file: url.path, line: 1, message: "not an rlif eval items file (no settings line)")
        }
        var items: [EvalReport.Item] = []
        for (k, line) in lines.dropFirst().enumerated() {
            do { items.append(try dec.decode(EvalReport.Item.self, from: line)) } catch {
                throw DatasetError(file: url.path, line: k + 2, message: "not an eval item: \(error)")
            }
        }
        return (found, items, lines)
    }

    /// Opens (or creates) `url` for `settings`; returns it with the items already there.
    public static func open(_ url: URL, settings: Settings) throws -> (EvalItemsFile, [EvalReport.Item]) {
        if let (found, items, lines) = try read(url) {
            guard found == settings else {
                throw DatasetError(file: url.path, line: 1,
                                   message: "holds an evaluation with other settings (\(found)); use another --items file")
            }
            // Rewrite without a torn last line, then append.
            var clean = Data(lines.joined(separator: [UInt8(ascii: "\n")]))
            clean.append(UInt8(ascii: "\n"))
            try AtomicFile.write(clean, to: url)
            return (EvalItemsFile(url: url, log: try MetricsLog(url: url, truncate: false)), items)
        }
        let f = EvalItemsFile(url: url, log: try MetricsLog(url: url, truncate: true))
        try f.write(settings)
        return (f, [])
    }

    private func write<T: Encodable>(_ value: T) throws {
        try log.append(value)
    }

    public func append(_ items: [EvalReport.Item]) throws {
        for it in items { try write(it) }
    }

    /// Replaces the file with `settings` and `items` (atomically): after a resumed evaluation, so that items scored
    /// again from their completions are stored with their current scores.
    public static func rewrite(_ url: URL, settings: Settings, items: [EvalReport.Item]) throws {
        let enc = MetricsLog.encoder()
        var data = try enc.encode(settings)
        data.append(UInt8(ascii: "\n"))
        for it in items {
            data.append(try enc.encode(it))
            data.append(UInt8(ascii: "\n"))
        }
        try AtomicFile.write(data, to: url)
    }
}

extension EvalItemsFile {
    /// Where a training run keeps the items of its evaluation after `step` steps: `<output>/eval/step-NNNNNN.jsonl`
    /// (an items file like `rlif eval --items` writes), so `rlif report` can draw right vs wrong answers.
    public static func trainingURL(output: URL, step: Int) -> URL {
        output.appendingPathComponent("eval").appendingPathComponent(String(format: "step-%06d.jsonl", step))
    }

    /// Writes the items of a training run's evaluation after `step` steps (replacing a file of the same step, as a
    /// resumed run evaluates that step again).
    public static func saveTraining(output: URL, step: Int, config c: TrainConfig, items: [EvalReport.Item]) throws {
        let url = trainingURL(output: output, step: step)
        try FileSystemError.makeDirectory(url.deletingLastPathComponent())
        let settings = Settings(model: c.model, data: c.evalPrompts ?? "", format: "math", limit: c.evalLimit,
                                maxNewTokens: c.maxNewTokens, template: c.template.rawValue, systemPrompt: c.systemPrompt)
        try rewrite(url, settings: settings, items: items)
    }

    /// The newest training-eval items file of a run directory (highest step), if any.
    public static func latestTraining(output: URL) -> URL? {
        let dir = output.appendingPathComponent("eval")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasPrefix("step-") && $0.hasSuffix(".jsonl") }.sorted().last.map { dir.appendingPathComponent($0) }
    }
}
