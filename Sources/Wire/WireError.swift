/// Why bytes from a peer were refused by `WireCodec.decode`, or why an envelope could not be encoded.
/// Every case names the offending field with its proto path, e.g. `rollout_group.completions[3].logprobs[17]`.
public enum WireError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The encoded message is larger than the receiver's limit.
    case tooLarge(bytes: Int, limit: Int)
    /// protobuf-c could not parse the bytes (truncated, bad wire type, bad varint, ...).
    case malformed(bytes: Int)
    /// `envelope.protocol_version` is not the version this build speaks.
    case protocolVersion(got: UInt32, expected: UInt32)
    /// `envelope.body` is not set (or is a message this build does not know).
    case missingBody
    /// A required sub-message (`work_item.sampling`, `rollout_group.timings`, ...) is absent.
    case missingField(String)
    /// Parallel repeated fields differ in length (`completions[i].logprobs` vs `completions[i].tokens`).
    case lengthMismatch(field: String, count: Int, expectedField: String, expected: Int)
    /// A float that must be finite is NaN or infinite.
    case nonFinite(field: String)
    /// A value is outside its allowed range (unknown enum value, temperature < 0, ...).
    case invalidValue(field: String, reason: String)
    /// `WireCodec.encode(_:into:)` was given a buffer smaller than `WireCodec.encodedSize`.
    case bufferTooSmall(needed: Int, available: Int)

    /// The proto path of the offending field.
    public var field: String {
        switch self {
        case .tooLarge, .malformed, .bufferTooSmall: "envelope"
        case .protocolVersion: "envelope.protocol_version"
        case .missingBody: "envelope.body"
        case .missingField(let f), .nonFinite(let f): f
        case .lengthMismatch(let f, _, _, _), .invalidValue(let f, _): f
        }
    }

    /// The `rlif.v1.ErrorCode` to answer a peer with.
    public var code: ErrorCode {
        switch self {
        case .tooLarge: .tooLarge
        case .protocolVersion: .protocolVersion
        case .bufferTooSmall: .internal
        default: .malformed
        }
    }

    public var description: String {
        switch self {
        case let .tooLarge(bytes, limit):
            "envelope: \(bytes) bytes exceeds the limit of \(limit) bytes"
        case let .malformed(bytes):
            "envelope: \(bytes) bytes are not a valid rlif.v1.Envelope (protobuf-c refused them)"
        case let .protocolVersion(got, expected):
            "envelope.protocol_version: peer speaks version \(got), this build speaks \(expected)"
        case .missingBody:
            "envelope.body: no message body (or a body type this build does not know)"
        case let .missingField(f):
            "\(f): required message is missing"
        case let .lengthMismatch(f, count, ef, expected):
            "\(f): has \(count) elements but \(ef) has \(expected)"
        case let .nonFinite(f):
            "\(f): is not finite (NaN or infinity)"
        case let .invalidValue(f, reason):
            "\(f): \(reason)"
        case let .bufferTooSmall(needed, available):
            "envelope: encoding needs \(needed) bytes, the buffer has \(available)"
        }
    }
}

extension ErrorMessage {
    /// The `Error` message that tells a peer why its message was refused.
    public init(_ error: WireError) {
        self.init(code: error.code, message: error.description, field: error.field)
    }
}
