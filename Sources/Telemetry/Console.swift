import Foundation

/// The numbers the console shows of a metrics.jsonl record (docs/METRICS.md), decoded from the record's JSON
/// line: the console renders what the file holds, in every mode (single-process, the learner, and the local-mode
/// supervisor, which gets the learner's records as lines on its stdout).
public struct ProgressSample: Decodable, Sendable, Equatable {
    public var kind: String?
    public var step: Int
    public var rewardMean: Double?
    public var rewardStd: Double?
    public var loss: Double?
    public var kl: Double?
    public var clipFraction: Double?
    public var gradNorm: Double?
    public var lr: Double?
    public var responseLength: Double?
    public var stepSeconds: Double?
    public var sampleSeconds: Double?
    public var totalSeconds: Double?
    public var trainedTokens: Double?
    public var evalAccuracy: Double?
    public var evalAccuracyLow: Double?
    public var evalAccuracyHigh: Double?
    public var evalSelfCertainty: Double?
    public var evalLength: Double?

    enum CodingKeys: String, CodingKey {
        case kind, step, rewardMean = "reward_mean", rewardStd = "reward_std", loss, kl, clipFraction = "clip_fraction"
        case gradNorm = "grad_norm", lr, responseLength = "response_length", stepSeconds = "step_seconds"
        case sampleSeconds = "sample_seconds", totalSeconds = "total_seconds", trainedTokens = "trained_tokens"
        case evalAccuracy = "eval_accuracy", evalAccuracyLow = "eval_accuracy_low", evalAccuracyHigh = "eval_accuracy_high"
        case evalSelfCertainty = "eval_self_certainty", evalLength = "eval_length"
    }

    /// Numbers written as strings ("nan", "inf") read as nil.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func d(_ k: CodingKeys) -> Double? { (try? c.decodeIfPresent(Double.self, forKey: k)) ?? nil }
        kind = try c.decodeIfPresent(String.self, forKey: .kind)
        step = try c.decode(Int.self, forKey: .step)
        rewardMean = d(.rewardMean); rewardStd = d(.rewardStd); loss = d(.loss); kl = d(.kl)
        clipFraction = d(.clipFraction); gradNorm = d(.gradNorm); lr = d(.lr); responseLength = d(.responseLength)
        stepSeconds = d(.stepSeconds); sampleSeconds = d(.sampleSeconds); totalSeconds = d(.totalSeconds)
        trainedTokens = d(.trainedTokens); evalAccuracy = d(.evalAccuracy); evalAccuracyLow = d(.evalAccuracyLow)
        evalAccuracyHigh = d(.evalAccuracyHigh); evalSelfCertainty = d(.evalSelfCertainty); evalLength = d(.evalLength)
    }

    public var isEval: Bool { kind == "eval" }

    /// One metrics.jsonl line.
    public static func decode(_ line: Data) throws -> ProgressSample {
        try JSONDecoder().decode(ProgressSample.self, from: line)
    }
}

/// The console's text for records: a step line per training step and an eval line per evaluation, and the one
/// progress line a terminal keeps updated under them. Pure; tests: `ConsoleTests`.
public struct ProgressText: Sendable {
    public let totalSteps: Int
    /// Seconds per step (total_seconds) of the steps seen so far, for the ETA.
    private var secondsSum = 0.0, stepsTimed = 0
    private var tokensSum = 0.0
    public private(set) var lastStep = 0
    public private(set) var lastReward: Double?
    public private(set) var lastEval: ProgressSample?

    public init(totalSteps: Int) { self.totalSteps = totalSteps }

    static func f(_ v: Double?, _ digits: Int) -> String {
        guard let v, v.isFinite else { return "-" }
        return String(format: "%.\(digits)f", v)
    }

    /// The step or eval line of `s`.
    public static func line(_ s: ProgressSample, totalSteps: Int) -> String {
        if s.isEval {
            let ci = s.evalAccuracyLow.flatMap { lo in s.evalAccuracyHigh.map { " (95% CI \(f(lo, 3))–\(f($0, 3)))" } } ?? ""
            return "eval @ step \(s.step): accuracy \(f(s.evalAccuracy, 3))\(ci)  self-certainty \(f(s.evalSelfCertainty, 4))  length \(f(s.evalLength, 1))"
        }
        let lr = s.lr.map { String(format: "%.2e", $0) } ?? "-"
        return "step \(s.step)/\(totalSteps)  reward \(f(s.rewardMean, 4)) ±\(f(s.rewardStd, 4))  loss \(f(s.loss, 5))  kl \(f(s.kl, 5))  clip \(f(s.clipFraction, 3))  |g| \(f(s.gradNorm, 3))  lr \(lr)  len \(f(s.responseLength, 1))  sample \(f(s.sampleSeconds, 2))s + train \(f(s.stepSeconds, 2))s"
    }

    /// Takes in a record; returns its line.
    public mutating func add(_ s: ProgressSample) -> String {
        if s.isEval {
            lastEval = s
        } else {
            lastStep = max(lastStep, s.step)
            lastReward = s.rewardMean
            if let t = s.totalSeconds ?? s.stepSeconds, t.isFinite {
                secondsSum += t
                stepsTimed += 1
                tokensSum += s.trainedTokens ?? 0
            }
        }
        return Self.line(s, totalSteps: totalSteps)
    }

    /// Seconds left at the mean pace of the steps seen (nil before the first).
    public var etaSeconds: Double? {
        stepsTimed > 0 ? secondsSum / Double(stepsTimed) * Double(max(0, totalSteps - lastStep)) : nil
    }

    /// Trained tokens per second of wall time over the steps seen.
    public var tokensPerSecond: Double? { secondsSum > 0 ? tokensSum / secondsSum : nil }

    /// "1h02m", "3m05s", "42s".
    public static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        if t >= 3600 { return String(format: "%dh%02dm", t / 3600, (t % 3600) / 60) }
        if t >= 60 { return String(format: "%dm%02ds", t / 60, t % 60) }
        return "\(t)s"
    }

    /// The progress line: a bar, step/total, ETA, tokens/s, the last reward and eval accuracy.
    public var status: String {
        let w = 20, k = totalSteps > 0 ? min(w, lastStep * w / totalSteps) : 0
        var parts = ["[\(String(repeating: "#", count: k))\(String(repeating: ".", count: w - k))] step \(lastStep)/\(totalSteps)"]
        parts.append("ETA " + (etaSeconds.map(Self.duration) ?? "-"))
        if let t = tokensPerSecond { parts.append(String(format: "%.0f tok/s", t)) }
        if let r = lastReward { parts.append("reward \(Self.f(r, 4))") }
        if let e = lastEval { parts.append("eval acc \(Self.f(e.evalAccuracy, 3)) @ \(e.step)") }
        return parts.joined(separator: "  ")
    }
}

/// The terminal of `rlif train`: step and eval lines scroll, and on a terminal one progress line stays at the
/// bottom (redrawn after every line printed above it, including log lines passed through `log`). On a pipe or
/// file only the plain lines are written. Thread-safe (children's pipes write from their own threads).
public final class Console: @unchecked Sendable {  // all state behind `lock`
    private let lock = NSLock()
    private var text: ProgressText
    private let live: Bool
    private let out: FileHandle
    private let err: FileHandle
    private var statusShown = false

    /// `live` defaults to whether stdout is a terminal (and TERM is not "dumb").
    public init(totalSteps: Int, live: Bool? = nil, out: FileHandle = .standardOutput, err: FileHandle = .standardError) {
        text = ProgressText(totalSteps: totalSteps)
        let term = ProcessInfo.processInfo.environment["TERM"]
        self.live = live ?? (isatty(1) != 0 && term != "dumb")
        self.out = out
        self.err = err
    }

    public var isLive: Bool { live }

    /// A metrics.jsonl record (its JSON line): prints its step/eval line and updates the progress line.
    public func record(_ line: Data) {
        guard let s = try? ProgressSample.decode(line) else { return }
        lock.lock(); defer { lock.unlock() }
        let l = text.add(s)
        write(out, l + "\n")
    }

    /// A line for stdout (not a record), kept above the progress line.
    public func print(_ line: String) {
        lock.lock(); defer { lock.unlock() }
        write(out, line + "\n")
    }

    /// Bytes for stderr (whole lines: log output of this process or a child's), kept above the progress line.
    public func log(_ bytes: Data) {
        lock.lock(); defer { lock.unlock() }
        clearStatus()
        err.write(bytes)
        drawStatus()
    }

    /// Removes the progress line (before the process prints its last words and exits).
    public func finish() {
        lock.lock(); defer { lock.unlock() }
        clearStatus()
    }

    public var progress: ProgressText {
        lock.lock(); defer { lock.unlock() }
        return text
    }

    private func write(_ h: FileHandle, _ s: String) {
        clearStatus()
        h.write(Data(s.utf8))
        drawStatus()
    }

    private func clearStatus() {
        guard live, statusShown else { return }
        out.write(Data("\r\u{1B}[2K".utf8))
        statusShown = false
    }

    private func drawStatus() {
        guard live, text.lastStep > 0 || text.lastEval != nil else { return }
        out.write(Data(("\r\u{1B}[2K" + text.status).utf8))
        statusShown = true
    }
}
