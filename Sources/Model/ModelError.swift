/// Errors of the Model module. Descriptions name the file, the config key or tensor, and expected vs actual.
public enum ModelError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A `config.json` key is missing, has the wrong type, or asks for something rlif does not implement.
    case config(file: String, key: String, detail: String)
    /// A checkpoint tensor is missing, unexpected, or has the wrong shape.
    case checkpoint(file: String, tensor: String, detail: String)
    /// A batch or decode request does not fit the model / cache (token id out of range, slots exhausted, …).
    case invalidInput(String)

    public var description: String {
        switch self {
        case let .config(file, key, detail): return "\(file): config key '\(key)': \(detail)"
        case let .checkpoint(file, tensor, detail): return "\(file): tensor '\(tensor)': \(detail)"
        case let .invalidInput(detail): return "invalid model input: \(detail)"
        }
    }
}
