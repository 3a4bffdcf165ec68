import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The libzmq context: one per process, shared by every socket (thread-safe, as libzmq contexts are).
///
/// Created non-blocky (`ZMQ_BLOCKY = 0`): new sockets default to linger 0, so closing a socket with unsent
/// messages to a vanished peer never hangs the process at exit. Set `.linger` on a socket to change that.
/// Sockets keep their context alive; the context is terminated when the last reference goes.
public final class ZMQContext: @unchecked Sendable {
    // @unchecked Sendable: a zmq context is documented thread-safe; `handle` is immutable after init.
    let handle: UnsafeMutableRawPointer

    /// - Parameter ioThreads: libzmq I/O threads (1 moves ~1 GB/s; more only for many connections).
    public init(ioThreads: Int32 = 1) throws(ZMQError) {
        guard let h = zmq_ctx_new() else { throw .last("zmq_ctx_new") }
        handle = h
        if zmq_ctx_set(h, ZMQ_IO_THREADS, ioThreads) != 0 { throw .last("zmq_ctx_set ZMQ_IO_THREADS") }
        if zmq_ctx_set(h, ZMQ_BLOCKY, 0) != 0 { throw .last("zmq_ctx_set ZMQ_BLOCKY") }
    }

    /// Makes every blocking call on every socket of this context fail with ETERM (`ZMQError.isTerminated`),
    /// so threads blocked in receive can notice shutdown. The sockets must still be closed by their owners.
    public func shutdown() {
        _ = zmq_ctx_shutdown(handle)
    }

    deinit {
        // zmq_ctx_term may be interrupted by a signal: retry (all sockets are closed by now, they retain us).
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }
}
