import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Connection metadata of a received message (libzmq message properties).
public struct PeerMetadata: Sendable, Equatable {
    /// The user id the ZAP handler returned for this connection: the peer's Z85 CURVE public key (nil without CURVE).
    public var userId: String?
    /// The peer's address as libzmq reports it (an IP for tcp, "host:uid:gid:pid" style for ipc); nil if unknown.
    public var address: String?
    /// The connection's file descriptor (`ZMQ_SRCFD`), -1 when unknown (inproc).
    public var fd: Int32 = -1
    public init() {}
}

extension ZMQSocket {
    /// Makes this socket a CURVE server (before `bind`): every connection is encrypted and must pass the context's
    /// ZAP handler (`ZAPHandler`), which sees the client's public key. Plain (NULL-mechanism) peers cannot connect.
    public func setCurveServer(secretKey: CurveKey) throws(ZMQError) {
        guard Curve.isAvailable else { throw ZMQError(errno: ENOTSUP, operation: "setsockopt ZMQ_CURVE_SERVER (\(Curve.unavailableReason))") }
        try setOption(ZMQOption(rawValue: ZMQ_CURVE_SERVER, name: "ZMQ_CURVE_SERVER"), 1)
        try setBytes(ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", Array(secretKey.z85.utf8))
    }

    /// Makes this socket a CURVE client of the server whose public key is `serverKey` (before `connect`).
    public func setCurveClient(serverKey: CurveKey, keyPair: CurveKeyPair) throws(ZMQError) {
        guard Curve.isAvailable else { throw ZMQError(errno: ENOTSUP, operation: "setsockopt ZMQ_CURVE_SERVERKEY (\(Curve.unavailableReason))") }
        try setBytes(ZMQ_CURVE_SERVERKEY, "ZMQ_CURVE_SERVERKEY", Array(serverKey.z85.utf8))
        try setBytes(ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY", Array(keyPair.publicKey.z85.utf8))
        try setBytes(ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", Array(keyPair.secretKey.z85.utf8))
    }

    /// Ends one peer's connection (its `PeerMetadata.fd`) without closing the descriptor, which libzmq owns:
    /// `shutdown(2)` makes libzmq's engine see the connection fail and tear it down; a reconnecting peer must pass
    /// the ZAP handler again. Used to cut off a peer whose key was revoked. Returns false if the fd was not a
    /// connected socket any more (already gone).
    @discardableResult
    public static func cutConnection(fd: Int32) -> Bool {
        guard fd >= 0 else { return false }
        var addr = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        // Only a connected socket: never shut down an fd that was closed and reused for something else.
        let connected = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) } } == 0
        guard connected else { return false }
        return shutdown(fd, Int32(SHUT_RDWR)) == 0
    }
}
