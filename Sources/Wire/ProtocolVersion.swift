import CRlifProto

/// The wire protocol version this build speaks (`rlif.v1.ProtocolVersion.PROTOCOL_VERSION_CURRENT`).
/// Every Envelope carries it; a receiver rejects any other value with an error naming the peer.
public let protocolVersion: UInt32 = UInt32(RLIF__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT.rawValue)
