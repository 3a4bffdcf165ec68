/// A coding key for any string: JSON objects whose keys are read or written by name (HF `config.json`, safetensors
/// headers, records with alternative field names, an extra computed key next to synthesized ones).
public struct AnyCodingKey: CodingKey, Hashable, Sendable {
    public var stringValue: String
    public var intValue: Int? { nil }
    public init(_ s: String) { stringValue = s }
    public init(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) { nil }
}
