import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// ZeroMQ socket types used by rlif (see docs/PROTOCOL.md for which process holds which).
public enum ZMQSocketType: Sendable, CustomStringConvertible {
    case router, dealer, pub, sub, push, pull, req, rep

    var rawValue: Int32 {
        switch self {
        case .router: ZMQ_ROUTER
        case .dealer: ZMQ_DEALER
        case .pub: ZMQ_PUB
        case .sub: ZMQ_SUB
        case .push: ZMQ_PUSH
        case .pull: ZMQ_PULL
        case .req: ZMQ_REQ
        case .rep: ZMQ_REP
        }
    }

    public var description: String {
        switch self {
        case .router: "ROUTER"
        case .dealer: "DEALER"
        case .pub: "PUB"
        case .sub: "SUB"
        case .push: "PUSH"
        case .pull: "PULL"
        case .req: "REQ"
        case .rep: "REP"
        }
    }
}

/// An integer (`int`) socket option, named for error messages.
public struct ZMQOption: Sendable {
    public let rawValue: Int32
    public let name: String

    /// ms to keep unsent messages after close (-1 forever; this context defaults to 0).
    public static let linger = ZMQOption(rawValue: ZMQ_LINGER, name: "ZMQ_LINGER")
    /// Send / receive high-water marks (messages). PUB drops past the HWM, others block or EAGAIN.
    public static let sendHighWaterMark = ZMQOption(rawValue: ZMQ_SNDHWM, name: "ZMQ_SNDHWM")
    public static let receiveHighWaterMark = ZMQOption(rawValue: ZMQ_RCVHWM, name: "ZMQ_RCVHWM")
    /// 1: a ROUTER send to an unknown routing id fails with EHOSTUNREACH instead of being dropped silently.
    public static let routerMandatory = ZMQOption(rawValue: ZMQ_ROUTER_MANDATORY, name: "ZMQ_ROUTER_MANDATORY")
    /// ROUTER: a new connection with an identity already in use takes it over (instead of being ignored), so a
    /// peer whose old TCP connection is half-dead after a network partition can come back under its own id.
    public static let routerHandover = ZMQOption(rawValue: ZMQ_ROUTER_HANDOVER, name: "ZMQ_ROUTER_HANDOVER")
    /// ZMTP-level PING interval / timeout / TTL in ms: detects dead TCP peers below the application.
    public static let heartbeatInterval = ZMQOption(rawValue: ZMQ_HEARTBEAT_IVL, name: "ZMQ_HEARTBEAT_IVL")
    public static let heartbeatTimeout = ZMQOption(rawValue: ZMQ_HEARTBEAT_TIMEOUT, name: "ZMQ_HEARTBEAT_TIMEOUT")
    public static let heartbeatTTL = ZMQOption(rawValue: ZMQ_HEARTBEAT_TTL, name: "ZMQ_HEARTBEAT_TTL")
    /// TCP keepalive: -1 OS default, 0 off, 1 on; idle / interval in seconds, count of probes.
    public static let tcpKeepalive = ZMQOption(rawValue: ZMQ_TCP_KEEPALIVE, name: "ZMQ_TCP_KEEPALIVE")
    public static let tcpKeepaliveIdle = ZMQOption(rawValue: ZMQ_TCP_KEEPALIVE_IDLE, name: "ZMQ_TCP_KEEPALIVE_IDLE")
    public static let tcpKeepaliveInterval = ZMQOption(rawValue: ZMQ_TCP_KEEPALIVE_INTVL, name: "ZMQ_TCP_KEEPALIVE_INTVL")
    public static let tcpKeepaliveCount = ZMQOption(rawValue: ZMQ_TCP_KEEPALIVE_CNT, name: "ZMQ_TCP_KEEPALIVE_CNT")
    /// Reconnect back-off: first interval and cap, ms.
    public static let reconnectInterval = ZMQOption(rawValue: ZMQ_RECONNECT_IVL, name: "ZMQ_RECONNECT_IVL")
    public static let reconnectIntervalMax = ZMQOption(rawValue: ZMQ_RECONNECT_IVL_MAX, name: "ZMQ_RECONNECT_IVL_MAX")
    /// 1: queue only to completed connections (a DEALER/PUSH send blocks instead of queueing to a dead pipe).
    public static let immediate = ZMQOption(rawValue: ZMQ_IMMEDIATE, name: "ZMQ_IMMEDIATE")
    /// Blocking send / receive timeouts in ms (-1 forever). Prefer `receive(timeoutMs:)`.
    public static let sendTimeout = ZMQOption(rawValue: ZMQ_SNDTIMEO, name: "ZMQ_SNDTIMEO")
    public static let receiveTimeout = ZMQOption(rawValue: ZMQ_RCVTIMEO, name: "ZMQ_RCVTIMEO")
    public static let connectTimeout = ZMQOption(rawValue: ZMQ_CONNECT_TIMEOUT, name: "ZMQ_CONNECT_TIMEOUT")
}

/// Owns one libzmq socket.
///
/// Threading: a zmq socket is NOT thread-safe. This class is deliberately not `Sendable`: create it on the thread
/// that uses it (a context is `Sendable` and can be handed to that thread) and keep it there. Sockets of several
/// threads talk through `inproc://` or `ipc://` endpoints, never by sharing a socket.
///
/// Blocking calls retry on EINTR. After `ZMQContext.shutdown()` they throw `ZMQError.isTerminated`.
public final class ZMQSocket {
    public let type: ZMQSocketType
    public let context: ZMQContext
    private var handle: UnsafeMutableRawPointer?
    /// Reused for every receive (a zmq_msg_t needs a stable address).
    private let message: UnsafeMutablePointer<zmq_msg_t>
    /// Last endpoint bound or connected, for error messages.
    private var label: String

    public init(_ context: ZMQContext, _ type: ZMQSocketType) throws(ZMQError) {
        guard let h = zmq_socket(context.handle, type.rawValue) else { throw .last("zmq_socket \(type)") }
        self.handle = h
        self.type = type
        self.context = context
        self.label = "\(type) socket"
        message = .allocate(capacity: 1)
        zmq_msg_init(message)
    }

    deinit {
        zmq_msg_close(message)
        message.deallocate()
        if let h = handle { zmq_close(h) }
    }

    /// Closes the socket now (also done on deinit). Further calls throw ENOTSOCK.
    public func close() {
        if let h = handle { zmq_close(h) }
        handle = nil
    }

    func live(_ op: String) throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let h = handle else { throw ZMQError(errno: ENOTSOCK, operation: op, endpoint: "\(label) (closed)") }
        return h
    }

    // MARK: Endpoints

    /// Binds, e.g. `tcp://127.0.0.1:*` (ephemeral port: read `lastEndpoint()`) or `ipc:///tmp/rlif-x.sock`.
    public func bind(_ endpoint: String) throws(ZMQError) {
        let h = try live("bind")
        guard zmq_bind(h, endpoint) == 0 else { throw .last("bind", endpoint) }
        label = "\(type) \(endpoint)"
        if let real = try? lastEndpoint() { label = "\(type) \(real)" }  // the real port of `tcp://...:*`
    }

    /// Connects (asynchronously: succeeds before the peer exists; libzmq reconnects by itself).
    public func connect(_ endpoint: String) throws(ZMQError) {
        let h = try live("connect")
        guard zmq_connect(h, endpoint) == 0 else { throw .last("connect", endpoint) }
        label = "\(type) \(endpoint)"
    }

    public func unbind(_ endpoint: String) throws(ZMQError) {
        let h = try live("unbind")
        guard zmq_unbind(h, endpoint) == 0 else { throw .last("unbind", endpoint) }
    }

    public func disconnect(_ endpoint: String) throws(ZMQError) {
        let h = try live("disconnect")
        guard zmq_disconnect(h, endpoint) == 0 else { throw .last("disconnect", endpoint) }
    }

    /// The endpoint of the last bind/connect with the real port (`tcp://127.0.0.1:41234`).
    public func lastEndpoint() throws(ZMQError) -> String {
        let h = try live("getsockopt ZMQ_LAST_ENDPOINT")
        var buf = [CChar](repeating: 0, count: 1024)
        var len = buf.count
        guard zmq_getsockopt(h, ZMQ_LAST_ENDPOINT, &buf, &len) == 0 else {
            throw .last("getsockopt ZMQ_LAST_ENDPOINT", label)
        }
        let bytes = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: Options

    public func setOption(_ option: ZMQOption, _ value: Int32) throws(ZMQError) {
        let h = try live("setsockopt \(option.name)")
        var v = value
        guard zmq_setsockopt(h, option.rawValue, &v, MemoryLayout<Int32>.size) == 0 else {
            throw .last("setsockopt \(option.name)=\(value)", label)
        }
    }

    public func option(_ option: ZMQOption) throws(ZMQError) -> Int32 {
        let h = try live("getsockopt \(option.name)")
        var v: Int32 = 0
        var len = MemoryLayout<Int32>.size
        guard zmq_getsockopt(h, option.rawValue, &v, &len) == 0 else { throw .last("getsockopt \(option.name)", label) }
        return v
    }

    /// Largest inbound message (bytes) before libzmq drops the connection; -1 = no limit. Set it to
    /// `WireCodec.defaultMaxBytes` on every socket facing an untrusted peer.
    public func setMaxMessageSize(_ bytes: Int64) throws(ZMQError) {
        let h = try live("setsockopt ZMQ_MAXMSGSIZE")
        var v = bytes
        guard zmq_setsockopt(h, ZMQ_MAXMSGSIZE, &v, MemoryLayout<Int64>.size) == 0 else {
            throw .last("setsockopt ZMQ_MAXMSGSIZE=\(bytes)", label)
        }
    }

    func setBytes(_ opt: Int32, _ name: String, _ value: [UInt8]) throws(ZMQError) {
        let h = try live("setsockopt \(name)")
        let rc = value.withUnsafeBytes { zmq_setsockopt(h, opt, $0.baseAddress, $0.count) }
        guard rc == 0 else { throw .last("setsockopt \(name)", label) }
    }

    /// The routing id a ROUTER peer sees for this socket (set before connect; 1–255 bytes, not starting with 0).
    public func setRoutingId(_ id: [UInt8]) throws(ZMQError) { try setBytes(ZMQ_ROUTING_ID, "ZMQ_ROUTING_ID", id) }
    public func setRoutingId(_ id: String) throws(ZMQError) { try setRoutingId(Array(id.utf8)) }

    /// SUB only: receive messages whose first frame starts with `prefix` (empty = everything).
    public func subscribe(_ prefix: [UInt8] = []) throws(ZMQError) { try setBytes(ZMQ_SUBSCRIBE, "ZMQ_SUBSCRIBE", prefix) }
    public func unsubscribe(_ prefix: [UInt8] = []) throws(ZMQError) {
        try setBytes(ZMQ_UNSUBSCRIBE, "ZMQ_UNSUBSCRIBE", prefix)
    }

    // MARK: Sending

    /// Frames at least this large are sent zero-copy by `send(frames:)`.
    public static let zeroCopyThreshold = 64 << 10

    /// Sends one multipart message atomically. Frames of `zeroCopyThreshold` bytes or more are handed to libzmq
    /// without copying (the array is retained until libzmq has written it); smaller ones are copied.
    /// - Parameter dontWait: return false instead of blocking when the HWM is reached (or no peer, for PUSH/DEALER).
    /// - Returns: false only when `dontWait` and the first frame could not be queued.
    @discardableResult
    public func send(frames: [[UInt8]], dontWait: Bool = false) throws(ZMQError) -> Bool {
        precondition(!frames.isEmpty, "a zmq message has at least one frame")
        do throws(ZMQError) {
            for (i, f) in frames.enumerated() {
                let more = i < frames.count - 1
                let ok = f.count >= Self.zeroCopyThreshold
                    ? try sendZeroCopy(f, more: more, dontWait: dontWait && i == 0)
                    : try send(f, more: more, dontWait: dontWait && i == 0)
                if !ok { return false }  // only the first frame can fail this way: nothing was queued
            }
            return true
        } catch {
            guard type == .router else { throw error }
            // Name the peer: the first frame of a ROUTER message is the routing id.
            let peer = String(decoding: frames[0], as: UTF8.self)
            throw ZMQError(errno: error.errno, operation: "send to peer '\(peer)'", endpoint: error.endpoint)
        }
    }

    /// Sends one frame, copied into a libzmq message. `more`: another frame of the same message follows.
    @discardableResult
    public func send(_ bytes: UnsafeRawBufferPointer, more: Bool = false, dontWait: Bool = false) throws(ZMQError) -> Bool {
        let h = try live("send")
        let flags = (more ? ZMQ_SNDMORE : 0) | (dontWait ? ZMQ_DONTWAIT : 0)
        while true {
            if zmq_send(h, bytes.baseAddress, bytes.count, flags) >= 0 { return true }
            let e = zmq_errno()
            if e == EINTR { continue }
            if e == EAGAIN && dontWait { return false }
            throw ZMQError(errno: e, operation: "send", endpoint: label)
        }
    }

    @discardableResult
    public func send(_ bytes: [UInt8], more: Bool = false, dontWait: Bool = false) throws(ZMQError) -> Bool {
        let r: Result<Bool, ZMQError> = bytes.withUnsafeBytes { raw in
            do throws(ZMQError) { return .success(try send(raw, more: more, dontWait: dontWait)) } catch { return .failure(error) }
        }
        return try r.get()
    }

    @discardableResult
    public func send(_ text: String, more: Bool = false, dontWait: Bool = false) throws(ZMQError) -> Bool {
        try send(Array(text.utf8), more: more, dontWait: dontWait)
    }

    /// Sends one frame without copying: libzmq reads `bytes`' storage directly and releases it (from its I/O
    /// thread) once written. Use for snapshot chunks and other MB-sized payloads.
    @discardableResult
    public func sendZeroCopy(_ bytes: [UInt8], more: Bool = false, dontWait: Bool = false) throws(ZMQError) -> Bool {
        try sendZeroCopy(bytes[...], more: more, dontWait: dontWait)
    }

    /// Zero-copy send of a slice (e.g. `WeightSnapshot.chunkData(i)`): the whole underlying array stays alive
    /// until libzmq has written the slice.
    @discardableResult
    public func sendZeroCopy(_ bytes: ArraySlice<UInt8>, more: Bool = false, dontWait: Bool = false) throws(ZMQError) -> Bool {
        if bytes.isEmpty { return try send(Array(bytes), more: more, dontWait: dontWait) }
        let h = try live("send")
        let box = RetainedBytes(bytes)
        // The box keeps the array's heap buffer alive and unmutated (a `let` in a class: never copied-on-write or
        // moved) until libzmq calls `releaseRetainedBytes`, so the pointer stays valid outside withUnsafeBytes.
        let base = box.bytes.withUnsafeBytes { UnsafeMutableRawPointer(mutating: $0.baseAddress!) }
        let hint = Unmanaged.passRetained(box).toOpaque()
        var msg = zmq_msg_t()
        guard zmq_msg_init_data(&msg, base, bytes.count, releaseRetainedBytes, hint) == 0 else {
            Unmanaged<RetainedBytes>.fromOpaque(hint).release()
            throw .last("zmq_msg_init_data", label)
        }
        let flags = (more ? ZMQ_SNDMORE : 0) | (dontWait ? ZMQ_DONTWAIT : 0)
        while true {
            if zmq_msg_send(&msg, h, flags) >= 0 { return true }  // libzmq owns msg now
            let e = zmq_errno()
            if e == EINTR { continue }
            zmq_msg_close(&msg)  // calls the free function: the box is released
            if e == EAGAIN && dontWait { return false }
            throw ZMQError(errno: e, operation: "send", endpoint: label)
        }
    }

    // MARK: Receiving

    /// Waits up to `timeoutMs` (nil = forever) for something to receive. Returns false on timeout.
    public func waitReadable(timeoutMs: Int?) throws(ZMQError) -> Bool {
        let h = try live("poll")
        var item = zmq_pollitem_t(socket: h, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
        let deadline = PollDeadline(timeoutMs: timeoutMs)
        while true {
            let rc = zmq_poll(&item, 1, deadline.pollTimeout)
            if rc > 0 { return true }
            if rc == 0 { return false }
            let e = zmq_errno()
            if e != EINTR { throw ZMQError(errno: e, operation: "poll", endpoint: label) }
        }
    }

    /// Receives the next frame into the reused message; returns `more`, or nil if `dontWait` found nothing.
    private func receiveFrame(_ h: UnsafeMutableRawPointer, dontWait: Bool) throws(ZMQError) -> Bool? {
        while true {
            if zmq_msg_recv(message, h, dontWait ? ZMQ_DONTWAIT : 0) >= 0 { return zmq_msg_more(message) != 0 }
            let e = zmq_errno()
            if e == EINTR { continue }
            if e == EAGAIN && dontWait { return nil }
            throw ZMQError(errno: e, operation: "receive", endpoint: label)
        }
    }

    private var currentFrame: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: zmq_msg_data(message), count: zmq_msg_size(message))
    }

    /// The same bytes typed as UInt8, so Array init/append copy them with one memcpy (a raw buffer would be
    /// copied byte by byte through its iterator).
    private var currentFrameBytes: UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: zmq_msg_data(message)?.assumingMemoryBound(to: UInt8.self), count: zmq_msg_size(message))
    }

    /// Receives the first frame of the next message, waiting at most `timeoutMs` (nil = forever, 0 = poll).
    private func receiveFirst(_ h: UnsafeMutableRawPointer, timeoutMs: Int?) throws(ZMQError) -> Bool {
        guard let timeoutMs else { _ = try receiveFrame(h, dontWait: false); return true }
        let deadline = PollDeadline(timeoutMs: timeoutMs)
        while true {
            if try receiveFrame(h, dontWait: true) != nil { return true }
            let ms = deadline.pollTimeout
            if ms <= 0 { return false }
            if try !waitReadable(timeoutMs: ms) { return false }
        }
    }

    /// Receives one whole multipart message into `frames`, reusing the arrays' capacity (frames.count becomes the
    /// number of frames). Returns false on timeout (`timeoutMs` nil = wait forever, 0 = poll).
    public func receive(into frames: inout [[UInt8]], timeoutMs: Int? = nil) throws(ZMQError) -> Bool {
        let h = try live("receive")
        guard try receiveFirst(h, timeoutMs: timeoutMs) else { return false }
        var n = 0
        while true {
            if n < frames.count {
                frames[n].removeAll(keepingCapacity: true)
                frames[n].append(contentsOf: currentFrameBytes)
            } else {
                frames.append(Array(currentFrameBytes))
            }
            n += 1
            if n == 1 { lastPeer = PeerMetadata() }
            capturePeerMetadata()
            if zmq_msg_more(message) == 0 { break }
            _ = try receiveFrame(h, dontWait: false)  // the rest of a multipart message is already here
        }
        if frames.count > n { frames.removeLast(frames.count - n) }
        return true
    }

    /// Receives one whole multipart message as fresh arrays, or nil on timeout.
    public func receiveFrames(timeoutMs: Int? = nil) throws(ZMQError) -> [[UInt8]]? {
        var frames: [[UInt8]] = []
        return try receive(into: &frames, timeoutMs: timeoutMs) ? frames : nil
    }

    /// Receives one frame and lends its bytes to `body` without copying (valid only inside `body`; decode it there,
    /// e.g. `WireCodec.decode(raw)`). Returns nil on timeout. `more` says whether another frame of the same
    /// message follows (receive it with another call).
    public func withReceivedFrame<R>(timeoutMs: Int? = nil,
                                     _ body: (_ bytes: UnsafeRawBufferPointer, _ more: Bool) throws -> R) throws -> R? {
        let h = try live("receive")
        guard try receiveFirst(h, timeoutMs: timeoutMs) else { return nil }
        return try body(currentFrame, zmq_msg_more(message) != 0)
    }

    /// Who sent the last message `receive(into:)` returned: the CURVE key ZAP admitted it with (nil without
    /// CURVE) and the file descriptor of its connection (-1 for inproc or unknown). See `CurveSocket.swift`.
    public internal(set) var lastPeer = PeerMetadata()

    /// libzmq attaches connection metadata to the frames a peer sent (not to a ROUTER's routing-id frame).
    private func capturePeerMetadata() {
        guard lastPeer.fd < 0 else { return }
        let fd = zmq_msg_get(message, ZMQ_SRCFD)
        guard fd >= 0 else { return }
        lastPeer.fd = fd
        if let uid = zmq_msg_gets(message, "User-Id") { lastPeer.userId = String(cString: uid) }
        if let addr = zmq_msg_gets(message, "Peer-Address") { lastPeer.address = String(cString: addr) }
    }

    /// The raw handle, for `ZMQPoller`.
    var rawHandle: UnsafeMutableRawPointer? { handle }
    var description: String { label }
}

/// Keeps a zero-copy frame's bytes alive until libzmq is done with them.
final class RetainedBytes {
    let bytes: ArraySlice<UInt8>
    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }
}

/// libzmq's free callback for zero-copy frames (may run on a libzmq I/O thread; the release is atomic).
private let releaseRetainedBytes: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { _, hint in
    if let hint { Unmanaged<RetainedBytes>.fromOpaque(hint).release() }
}
