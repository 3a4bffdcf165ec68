/// How one group of completions is sampled.
///
/// Temperature convention (stated once, used on both sides of the wire): tokens are drawn from
/// softmax(z / T) after top-k and top-p filtering, and the recorded behaviour log-probability of a token is
/// log softmax(z / T)[token] over the *unfiltered* vocabulary — the quantity the learner recomputes for the PPO
/// ratio (TRL's and the official INTUITOR code's convention). With T = 0 (greedy) the recorded log-probability
/// is taken at T = 1. Self-certainty always uses the raw logits z, never z / T.
public struct SamplingParameters: Sendable, Hashable, Codable {
    /// 0 means greedy (argmax).
    public var temperature: Float
    /// Nucleus sampling mass in (0, 1]; 1 disables it.
    public var topP: Float
    /// Keep only the k most likely tokens; 0 disables it.
    public var topK: Int
    public var maxNewTokens: Int
    /// A completion ends after emitting one of these (the stop token is kept and counts as a response token).
    public var stopTokenIds: Set<Int32>
    /// A completion also ends when its tokens end with one of these id sequences (stop strings, tokenized the
    /// way they appear in generated text); the matched tokens are kept. Matching is on token ids, so a string
    /// that the model spells with other tokens does not match.
    public var stopSequences: [[Int32]]

    /// Bounds on stop sequences that training runs enforce (config `stop`; the wire's `SamplingParams` has the same).
    public static let maxStopSequences = 32
    public static let maxStopSequenceTokens = 64

    public init(temperature: Float = 1, topP: Float = 1, topK: Int = 0, maxNewTokens: Int = 256,
                stopTokenIds: Set<Int32> = [], stopSequences: [[Int32]] = []) {
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.maxNewTokens = maxNewTokens
        self.stopTokenIds = stopTokenIds
        self.stopSequences = stopSequences.filter { !$0.isEmpty }
    }

    /// True when `tokens` ends with one of `stopSequences`.
    public func endsWithStopSequence(_ tokens: [Int32]) -> Bool {
        for s in stopSequences where s.count <= tokens.count {
            if tokens[(tokens.count - s.count)...].elementsEqual(s) { return true }
        }
        return false
    }

    /// The temperature used for recorded log-probabilities (T, or 1 when greedy).
    public var logprobTemperature: Float { temperature > 0 ? temperature : 1 }

    /// Throws a `SamplingError.invalidParameter` naming the field when a value is out of range.
    public func validate() throws(SamplingError) {
        guard temperature.isFinite, temperature >= 0 else {
            throw .invalidParameter("temperature", "must be finite and >= 0, got \(temperature)")
        }
        guard topP.isFinite, topP > 0, topP <= 1 else {
            throw .invalidParameter("top_p", "must be in (0, 1], got \(topP)")
        }
        guard topK >= 0 else { throw .invalidParameter("top_k", "must be >= 0, got \(topK)") }
        guard maxNewTokens >= 1 else { throw .invalidParameter("max_new_tokens", "must be >= 1, got \(maxNewTokens)") }
    }
}

/// Errors from sampling; each names the field or request at fault.
public enum SamplingError: Error, CustomStringConvertible, Equatable {
    case invalidParameter(String, String)
    case emptyPrompt(requestIndex: Int)
    case nonFiniteLogits(requestIndex: Int, completion: Int, step: Int)
    case decoder(String)

    public var description: String {
        switch self {
        case let .invalidParameter(field, why): return "sampling parameter \(field): \(why)"
        case let .emptyPrompt(i): return "request \(i): the prompt has no tokens"
        case let .nonFiniteLogits(i, c, s):
            return "request \(i), completion \(c): non-finite logits at generated token \(s)"
        case let .decoder(msg): return "decoder: \(msg)"
        }
    }
}
