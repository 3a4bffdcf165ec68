import Foundation
import TensorBoard
import Tokenizer

/// Where a run's records go, opened once per process the same way in single-process runs and in the learner:
/// metrics.jsonl, the TensorBoard event files (`tensorboard: true`) and samples.jsonl. On a resume after
/// `completedSteps` steps each drops what the resumed run will write again (`MetricsLog(url:resumingAfter:)`,
/// `TensorBoardWriter.trim`), so every step has one record everywhere.
public final class RunRecords {
    public let metrics: MetricsLog
    public let tensorBoard: TensorBoardWriter?
    public let samples: SampleLog

    public init(output: URL, config: TrainConfig, tokenizer: Tokenizer, resumingAfter completedSteps: Int) throws {
        metrics = try MetricsLog(url: output.appendingPathComponent("metrics.jsonl"), resumingAfter: completedSteps)
        if config.tensorboard {
            let dir = output.appendingPathComponent("tb")
            if completedSteps > 0 { try TensorBoardWriter.trim(directory: dir, keepingStepsThrough: completedSteps) }
            tensorBoard = try TensorBoardWriter(directory: dir)
        } else {
            tensorBoard = nil
        }
        samples = SampleLog(output: output, every: config.logSamplesEvery, tokenizer: tokenizer)
        _ = try MetricsLog(url: samples.url, resumingAfter: completedSteps)
    }

    /// One step or eval record into metrics.jsonl and, as scalars at its step, the event file.
    public func append(_ record: some RunLogRecord) throws {
        let line = try metrics.append(record)
        if let tb = tensorBoard {
            // The scalars are the line's numbers as written: JSONDecoder reads a number as `Double(text)`, correctly
            // rounded; JSONSerialization's NSNumber was off by an ulp now and then, which Float() sometimes kept
            // (TensorBoardRunTests compares the event file with metrics.jsonl value by value).
            let row = try JSONDecoder().decode([String: JSONScalar].self, from: line)
            try tb.add(record: row.compactMapValues(\.value))
        }
    }

    /// A value of a metrics.jsonl line: a number, a string (`kind`), or anything else (booleans, nested objects),
    /// which no scalar comes from.
    private enum JSONScalar: Decodable {
        case number(Double), text(String), other
        init(from d: Decoder) throws {
            let c = try d.singleValueContainer()
            if let x = try? c.decode(Double.self) { self = .number(x) }   // a JSON boolean is not a Double here
            else if let s = try? c.decode(String.self) { self = .text(s) }
            else { self = .other }
        }
        var value: Any? {
            switch self {
            case .number(let x): return x
            case .text(let s): return s
            case .other: return nil
            }
        }
    }

    /// `append` for a callback's event.
    public func append(_ event: RunEvent) throws {
        switch event {
        case .train(let r): try append(r)
        case .eval(let r): try append(r)
        }
    }
}
