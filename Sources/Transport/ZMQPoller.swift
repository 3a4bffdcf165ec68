import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Waits on several sockets at once (`zmq_poll`). Same threading rule as the sockets: use it on their thread.
///
///     let poller = ZMQPoller()
///     let work = poller.add(router), notices = poller.add(sub)
///     for i in try poller.poll(timeoutMs: 100) { ... }   // indices of readable sockets
public final class ZMQPoller {
    private var sockets: [ZMQSocket] = []
    private var items: [zmq_pollitem_t] = []

    public init() {}

    public var count: Int { sockets.count }

    /// Adds a socket to watch for input (and for output when `writable`); returns its index.
    @discardableResult
    public func add(_ socket: ZMQSocket, writable: Bool = false) -> Int {
        sockets.append(socket)
        let events = Int16(ZMQ_POLLIN) | (writable ? Int16(ZMQ_POLLOUT) : 0)
        items.append(zmq_pollitem_t(socket: socket.rawHandle, fd: 0, events: events, revents: 0))
        return sockets.count - 1
    }

    public func socket(_ index: Int) -> ZMQSocket { sockets[index] }

    /// Waits up to `timeoutMs` (nil = forever) and returns the indices of sockets with input, in add order
    /// (empty on timeout). EINTR is retried with the remaining time.
    public func poll(timeoutMs: Int?) throws(ZMQError) -> [Int] {
        for (i, s) in sockets.enumerated() { items[i].socket = s.rawHandle; items[i].revents = 0 }
        let deadline = PollDeadline(timeoutMs: timeoutMs)
        while true {
            let wait = deadline.pollTimeout
            let rc = items.withUnsafeMutableBufferPointer { zmq_poll($0.baseAddress, Int32($0.count), wait) }
            if rc >= 0 { break }
            let e = zmq_errno()
            if e != EINTR {
                throw ZMQError(errno: e, operation: "poll", endpoint: sockets.map(\.description).joined(separator: ", "))
            }
        }
        return items.indices.filter { items[$0].revents & Int16(ZMQ_POLLIN) != 0 }
    }

    /// After `poll`: whether socket `index` can send without blocking (only if added `writable`).
    public func isWritable(_ index: Int) -> Bool { items[index].revents & Int16(ZMQ_POLLOUT) != 0 }
}
