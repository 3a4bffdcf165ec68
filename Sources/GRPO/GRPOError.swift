/// Bad input to a GRPO routine. Every case names the argument (and index) at fault, so a learner can log it and
/// drop the batch instead of crashing.
public enum GRPOError: Error, CustomStringConvertible, Equatable {
    /// `argument` has `count` elements where `expected` were required (`why` says which rule).
    case countMismatch(argument: String, count: Int, expected: Int, why: String)
    /// A numeric argument is outside its valid range.
    case invalidValue(argument: String, value: Double, why: String)
    /// Sequence `index` (offset, length) does not fit in the `tokenCount` flat token arrays.
    case sequenceOutOfRange(index: Int, offset: Int, length: Int, tokenCount: Int)
    /// A value required by the configuration was not supplied.
    case missingInput(argument: String, why: String)
    /// A checkpointed optimizer state does not match this optimizer.
    case stateMismatch(field: String, why: String)

    public var description: String {
        switch self {
        case let .countMismatch(argument, count, expected, why):
            return "GRPO: `\(argument)` has \(count) elements, expected \(expected) (\(why))"
        case let .invalidValue(argument, value, why):
            return "GRPO: `\(argument)` = \(value) is invalid: \(why)"
        case let .sequenceOutOfRange(index, offset, length, tokenCount):
            return "GRPO: sequence \(index) (offset \(offset), length \(length)) exceeds the \(tokenCount) flat tokens"
        case let .missingInput(argument, why):
            return "GRPO: `\(argument)` is required: \(why)"
        case let .stateMismatch(field, why):
            return "GRPO: optimizer state field `\(field)` does not fit: \(why)"
        }
    }
}
