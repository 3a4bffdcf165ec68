import CZeroMQ
import Foundation

/// Who may connect to a CURVE server, shared between the ZAP thread (which asks at every handshake) and the
/// owner's loop (which reloads the list, drains denials for its log and checks each message's key). Thread-safe.
///
/// The decision itself (`decide`) is pure apart from the counters, so it is tested without sockets.
public final class CurveAccess: @unchecked Sendable {  // every field behind `lock`
    /// A refused handshake, for the log.
    public struct Denial: Sendable, Equatable {
        public var address: String
        /// The client's public key (nil when the mechanism was not CURVE or the credential was malformed).
        public var key: CurveKey?
        public var mechanism: String
        public var reason: String
    }

    public struct Counts: Sendable, Equatable {
        public var allowed = 0
        public var denied = 0
        /// Denials not kept for the log because the queue was full (still counted in `denied`).
        public var denialsNotQueued = 0
    }

    private let lock = NSLock()
    private var keys: AuthorizedKeys
    private var counts = Counts()
    private var denials: [Denial] = []
    /// Bound on queued denials: a flood of handshakes must not grow memory (the rest are only counted).
    public static let maxQueuedDenials = 64

    public init(_ keys: AuthorizedKeys) { self.keys = keys }

    public var authorized: AuthorizedKeys { lock.lock(); defer { lock.unlock() }; return keys }
    public var counters: Counts { lock.lock(); defer { lock.unlock() }; return counts }

    /// Whether a message's `PeerMetadata.userId` is a key listed right now (false for nil: no CURVE identity).
    public func isAuthorized(userId: String?) -> Bool {
        guard let u = userId, let k = try? CurveKey(z85: u) else { return false }
        lock.lock(); defer { lock.unlock() }
        return keys.contains(k)
    }

    public func label(userId: String?) -> String? {
        guard let u = userId, let k = try? CurveKey(z85: u) else { return nil }
        lock.lock(); defer { lock.unlock() }
        return keys.label(k)
    }

    /// Installs a new list; returns the keys it no longer holds (their live connections should be cut).
    @discardableResult
    public func replace(with new: AuthorizedKeys) -> [CurveKey] {
        lock.lock(); defer { lock.unlock() }
        let revoked = keys.labels.keys.filter { !new.contains($0) }.sorted { $0.z85 < $1.z85 }
        keys = new
        return revoked
    }

    /// The ZAP decision for one handshake: only the CURVE mechanism with a listed 32-byte key is admitted; the
    /// user id returned to libzmq is the key in Z85 (it becomes every message's "User-Id" property).
    public func decide(mechanism: String, credential: [UInt8]?, address: String) -> (allowed: Bool, userId: String, status: String) {
        let key = credential.flatMap { CurveKey(raw: $0) }
        lock.lock(); defer { lock.unlock() }
        let reason: String
        if mechanism != "CURVE" {
            reason = "mechanism \(mechanism) (only CURVE is accepted)"
        } else if let k = key, keys.contains(k) {
            counts.allowed += 1
            return (true, k.z85, "OK")
        } else {
            reason = key == nil ? "malformed CURVE credential" : "key not in the authorized keys"
        }
        counts.denied += 1
        if denials.count < Self.maxQueuedDenials {
            denials.append(Denial(address: address, key: key, mechanism: mechanism, reason: reason))
        } else {
            counts.denialsNotQueued += 1
        }
        return (false, "", reason)
    }

    /// Takes the queued denials (oldest first).
    public func drainDenials() -> [Denial] {
        lock.lock(); defer { lock.unlock() }
        let d = denials
        denials.removeAll(keepingCapacity: true)
        return d
    }
}

/// The ZAP handler (ZeroMQ RFC 27) of one context: a REP socket on `inproc://zeromq.zap.01`, on its own thread,
/// answering every CURVE handshake of that context's sockets from a `CurveAccess`. It must be running before
/// the CURVE sockets bind: libzmq 4.3 admits every CURVE client when no handler is bound.
///
/// Request frames: version "1.0", request id, domain, address, routing id, mechanism, credentials (CURVE: the
/// client's 32-byte public key). Reply: version, request id, status code "200"/"400", status text, user id,
/// metadata (empty).
public final class ZAPHandler: @unchecked Sendable {  // `stopping` and `thread` behind `cond`
    public static let endpoint = "inproc://zeromq.zap.01"
    public let access: CurveAccess
    private let cond = NSCondition()
    private var stopping = false
    private var exited = false

    /// Starts the thread and returns once the handler is bound (or throws the bind error).
    public init(context: ZMQContext, access: CurveAccess) throws {
        self.access = access
        let ready = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var bindError: Error?
        let t = Thread { [self] in
            let sock: ZMQSocket
            do {
                sock = try ZMQSocket(context, .rep)
                try sock.setOption(.linger, 0)
                try sock.bind(Self.endpoint)
            } catch {
                bindError = error
                ready.signal()
                markExited()
                return
            }
            ready.signal()
            serve(sock)
            sock.close()
            markExited()
        }
        t.name = "rlif-zap"
        t.start()
        ready.wait()
        if let e = bindError { throw e }
    }

    private func markExited() { cond.lock(); exited = true; cond.broadcast(); cond.unlock() }
    private var isStopping: Bool { cond.lock(); defer { cond.unlock() }; return stopping }

    private func serve(_ sock: ZMQSocket) {
        var frames: [[UInt8]] = []
        while !isStopping {
            do {
                guard try sock.receive(into: &frames, timeoutMs: 100) else { continue }
            } catch {
                return  // context terminated (ETERM) or closed: the owner is shutting down
            }
            guard frames.count >= 6, frames[0] == Array("1.0".utf8) else {
                // Not a ZAP 1.0 request: answer 500 so the handshake fails instead of hanging (RFC 27).
                let id = frames.count > 1 ? frames[1] : []
                _ = try? sock.send(frames: [Array("1.0".utf8), id, Array("500".utf8), Array("bad ZAP request".utf8), [], []])
                continue
            }
            let mechanism = String(decoding: frames[5], as: UTF8.self)
            let address = String(decoding: frames[3], as: UTF8.self)
            let d = access.decide(mechanism: mechanism, credential: frames.count > 6 ? frames[6] : nil, address: address)
            _ = try? sock.send(frames: [Array("1.0".utf8), frames[1], Array((d.allowed ? "200" : "400").utf8),
                                        Array(d.status.utf8), Array(d.userId.utf8), []])
        }
    }

    /// Stops the thread (at most ~100 ms) and waits for it. Also happens when the context is shut down.
    public func stop() {
        cond.lock()
        stopping = true
        while !exited { cond.wait() }
        cond.unlock()
    }
}
