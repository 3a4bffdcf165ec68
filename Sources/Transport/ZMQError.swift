import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed libzmq call: errno, libzmq's own text for it, what was being done and on which endpoint.
public struct ZMQError: Error, CustomStringConvertible, Equatable, Sendable {
    public let errno: Int32
    /// `zmq_strerror(errno)`.
    public let message: String
    /// The operation, e.g. "bind", "connect", "send", "setsockopt ZMQ_LINGER".
    public let operation: String
    /// The endpoint involved (or the socket's description), when known.
    public let endpoint: String?

    public init(errno: Int32, operation: String, endpoint: String? = nil) {
        self.errno = errno
        self.message = String(cString: zmq_strerror(errno))
        self.operation = operation
        self.endpoint = endpoint
    }

    /// The error libzmq reports for the calling thread right now.
    static func last(_ operation: String, _ endpoint: String? = nil) -> ZMQError {
        ZMQError(errno: zmq_errno(), operation: operation, endpoint: endpoint)
    }

    public var description: String {
        "zmq \(operation)\(endpoint.map { " \($0)" } ?? ""): \(message) (errno \(errno))"
    }

    /// The peer named in a ROUTER send is not connected (with ZMQ_ROUTER_MANDATORY).
    public var isHostUnreachable: Bool { errno == EHOSTUNREACH }
    /// The context was terminated: the owning thread should close its sockets and stop.
    public var isTerminated: Bool { errno == ETERM }
}
