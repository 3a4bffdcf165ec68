import Scheduling
import Transport

/// Limits the learner holds every peer to (docs/PROTOCOL.md "Limits"). Defaults suit a few hundred actors.
public struct AbuseLimits: Sendable, Equatable {
    /// Actors admitted at once (said Hello and not yet gone); more Hellos get `Error{INTERNAL, "too many actors"}`.
    public var maxActors = 1024
    /// Actors admitted at once under one CURVE key (one key = one operator's machine or pod template).
    public var maxActorsPerKey = 64
    /// `Error` replies: per peer (routing id) and over all peers; past them a refused message gets no reply.
    public var errorRepliesPerPeer = RateLimiter.Config(perPeerPerSecond: 2, perPeerBurst: 5,
                                                         globalPerSecond: 50, globalBurst: 100, maxTrackedPeers: 4096)
    /// Lines of the refused-message / denied-peer log per second (then one "N suppressed" line).
    public var logLinesPerSecond = 5.0
    public var logBurst = 20.0
    /// Refused-message texts kept in `LearnerSummary.refusedMessages` (the newest).
    public var keptRefusals = 100
    /// Connections remembered per key for cutting them off on revocation (the newest).
    public var connectionsPerKey = 16
    /// Messages queued per connection in libzmq before it stops reading from that peer (`ZMQ_RCVHWM`).
    public var receiveHighWaterMark: Int32 = 256
    public init() {}
}

/// CURVE settings of a learner: its key pair and who may connect (reloadable, shared with the ZAP handler).
public struct LearnerCurve: Sendable {
    public var keyPair: CurveKeyPair
    public var access: CurveAccess
    public init(keyPair: CurveKeyPair, access: CurveAccess) { self.keyPair = keyPair; self.access = access }
}

/// The learner's per-peer trust decisions as plain state (no sockets, time passed in): which CURVE key each actor
/// id belongs to, who is banned, who may still get an error reply or a log line, and which connections a key
/// holds (to cut them on revocation). `PeerGuardTests` drives it without sockets.
public struct PeerGuard: Sendable {
    public enum Verdict: Sendable, Equatable {
        case ok
        /// Drop the message without a reply (and maybe log `reason`).
        case drop(reason: String)
    }

    public let limits: AbuseLimits
    /// nil: no CURVE (messages carry no key).
    public let curve: Bool
    /// actor id → the key (Z85) it said Hello with; kept while the actor is admitted.
    public private(set) var keyOfActor: [String: String] = [:]
    /// Banned actor ids and keys (values flagged by verification, or invalid groups past the limit).
    public private(set) var bannedActors: Set<String> = []
    public private(set) var bannedKeys: Set<String> = []
    /// key → connection fds seen carrying it (newest last, at most `connectionsPerKey`).
    private var fdsOfKey: [String: [Int32]] = [:]
    private var replies: RateLimiter
    private var logs: RateLimiter
    /// Messages dropped by `admit`.
    public private(set) var dropped = 0

    public init(limits: AbuseLimits, curve: Bool) {
        self.limits = limits
        self.curve = curve
        replies = RateLimiter(limits.errorRepliesPerPeer)
        logs = RateLimiter(.init(perPeerPerSecond: limits.logLinesPerSecond, perPeerBurst: limits.logBurst,
                                 globalPerSecond: limits.logLinesPerSecond, globalBurst: limits.logBurst, maxTrackedPeers: 1))
    }

    /// Every message from `actor` (its routing id) before anything else: with CURVE the key must be listed now
    /// (`listed`), not banned, and the one this actor id said Hello with (another key cannot speak for it).
    public mutating func admit(actor: String, key: String?, listed: Bool) -> Verdict {
        let v = judge(actor: actor, key: key, listed: listed)
        if case .drop = v { dropped += 1 }
        return v
    }

    private mutating func judge(actor: String, key: String?, listed: Bool) -> Verdict {
        if bannedActors.contains(actor) { return .drop(reason: "actor '\(actor)' is banned") }
        guard curve else { return .ok }
        guard let key else { return .drop(reason: "message from '\(actor)' without a CURVE key") }
        if bannedKeys.contains(key) { return .drop(reason: "key \(key.prefix(8))… is banned") }
        if !listed { return .drop(reason: "key \(key.prefix(8))… of '\(actor)' is no longer authorized") }
        if let bound = keyOfActor[actor], bound != key {
            return .drop(reason: "actor id '\(actor)' belongs to key \(bound.prefix(8))…, not \(key.prefix(8))…")
        }
        return .ok
    }

    /// Remembers the connection a key's message came on (for `connections(of:)`).
    public mutating func saw(key: String?, fd: Int32) {
        guard let key, fd >= 0 else { return }
        var l = fdsOfKey[key, default: []]
        if l.last == fd || l.contains(fd) { return }
        l.append(fd)
        if l.count > limits.connectionsPerKey { l.removeFirst(l.count - limits.connectionsPerKey) }
        fdsOfKey[key] = l
    }

    public func connections(of key: String) -> [Int32] { fdsOfKey[key] ?? [] }

    /// A Hello: nil when the actor may join (and binds its id to `key`), else why not. `admitted` is the
    /// number of actors admitted now (the ledger's), `known` whether this id is one of them (a restart).
    public mutating func hello(actor: String, key: String?, admitted: Int, known: Bool) -> String? {
        if !known && admitted >= limits.maxActors {
            return "too many actors (\(limits.maxActors) admitted); try again later"
        }
        if let key {
            let sameKey = keyOfActor.values.reduce(0) { $0 + ($1 == key ? 1 : 0) }
            if keyOfActor[actor] != key && sameKey >= limits.maxActorsPerKey {
                return "key \(key.prefix(8))… already has \(sameKey) actors (limit \(limits.maxActorsPerKey))"
            }
            keyOfActor[actor] = key
        }
        return nil
    }

    /// The actor left or was declared dead: its id may be taken by any listed key again.
    public mutating func forget(actor: String) { keyOfActor[actor] = nil }

    /// Actors whose key is `key` (e.g. to cut them off when it is revoked).
    public func actors(of key: String) -> [String] { keyOfActor.filter { $0.value == key }.map(\.key).sorted() }

    public func key(of actor: String) -> String? { keyOfActor[actor] }

    /// Bans an actor id, and its key with CURVE (every actor of that key is then refused).
    public mutating func ban(actor: String) {
        bannedActors.insert(actor)
        if let k = keyOfActor[actor] { bannedKeys.insert(k) }
    }

    /// Whether a refused message from `peer` may still get an `Error` reply now.
    public mutating func mayReply(to peer: String, now: UInt64) -> Bool { replies.allow(peer, now: now) }

    /// Whether one more line may go to the error log now; the second value is how many were suppressed since
    /// the last line that went out (to say so in that line).
    public mutating func mayLog(now: UInt64) -> (Bool, suppressed: Int) {
        guard logs.allow("", now: now) else { return (false, 0) }
        return (true, logs.takeSuppressed())
    }

    public var repliesSuppressed: Int { replies.refusedTotal }
    public var logLinesSuppressed: Int { logs.refusedTotal }
}
