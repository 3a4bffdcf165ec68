import ArgumentParser
import Foundation

// Range checks of command-line options, in `validate()` so that ArgumentParser rejects them before any work and
// prints the subcommand's own usage (an error thrown from `run()` shows the top-level usage instead).

/// An error found during `run()` (it needs a loaded file), pointing to the subcommand's help.
struct CommandError: Error, CustomStringConvertible {
    var message: String
    var command: String
    init(_ message: String, command: String) { self.message = message; self.command = command }
    var description: String { "\(message)\n(see 'rlif \(command) --help')" }
}

enum OptionCheck {
    static func positive(_ v: Int?, _ name: String) throws {
        if let v, v < 1 { throw ValidationError("\(name) must be >= 1, got \(v)") }
    }
    static func temperature(_ t: Float, _ name: String = "--temperature", allowZero: Bool) throws {
        guard t.isFinite, allowZero ? t >= 0 : t > 0 else {
            throw ValidationError("\(name) must be a finite number \(allowZero ? ">= 0 (0 = greedy)" : "> 0"), got \(t)")
        }
    }
    static func topP(_ p: Float) throws {
        guard p.isFinite, p > 0, p <= 1 else { throw ValidationError("--top-p must be in (0, 1], got \(p)") }
    }
    static func nonNegative(_ v: Int, _ name: String) throws {
        if v < 0 { throw ValidationError("\(name) must be >= 0, got \(v)") }
    }
}

extension ModelOptions {
    func validate() throws {
        try OptionCheck.positive(threads, "--threads")
    }
}

extension Generate {
    func validate() throws {
        try OptionCheck.positive(group, "--group")
        try OptionCheck.temperature(temperature, allowZero: true)
        try OptionCheck.topP(topP)
        try OptionCheck.nonNegative(topK, "--top-k")
        try OptionCheck.positive(maxNewTokens, "--max-new-tokens")
        try OptionCheck.positive(batchSequences, "--batch-sequences")
        if prompt == nil && prompts == nil { throw ValidationError("give --prompt TEXT or --prompts FILE.jsonl") }
    }
}

extension Score {
    func validate() throws {
        try OptionCheck.temperature(temperature, allowZero: false)
    }
}

extension Eval {
    func validate() throws {
        try OptionCheck.positive(limit, "--limit")
        try OptionCheck.positive(maxNewTokens, "--max-new-tokens")
        try OptionCheck.positive(batchSequences, "--batch-sequences")
    }
}

extension ActorCommand {
    func validate() throws {
        try LogSetup.validate(logLevel)
        try OptionCheck.positive(threads, "--threads")
        try OptionCheck.positive(batchSequences, "--batch-sequences")
        try OptionCheck.nonNegative(giveUpAfter, "--give-up-after")
        try MetricsAddress.validate(metricsAddr)
    }
}

extension LearnerCommand {
    func validate() throws {
        try LogSetup.validate(logLevel)
        if resume && overwrite { throw ValidationError("--resume and --overwrite contradict each other: pick one") }
        try OptionCheck.nonNegative(weightCheckEvery, "--weight-check-every")
        try MetricsAddress.validate(metricsAddr)
    }
}
