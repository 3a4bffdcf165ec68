/// Token buckets for "at most r per second, bursts of b", one global and one per peer, with the time passed in
/// (monotonic ms) so tests replay any sequence. Memory is bounded: at most `maxTrackedPeers` per-peer buckets;
/// when the table is full, buckets that have refilled (indistinguishable from new ones) are dropped, and if none
/// has, an untracked peer is held to the global bucket alone.
///
/// Used by the learner for error replies (a peer flooding garbage gets a few `Error`s, then silence) and for
/// its error log (a flood costs a few lines and a count of the suppressed ones, not one line per message).
public struct RateLimiter: Sendable {
    public struct Config: Sendable, Equatable {
        public var perPeerPerSecond: Double
        public var perPeerBurst: Double
        public var globalPerSecond: Double
        public var globalBurst: Double
        public var maxTrackedPeers: Int
        public init(perPeerPerSecond: Double, perPeerBurst: Double, globalPerSecond: Double, globalBurst: Double,
                    maxTrackedPeers: Int = 1024) {
            self.perPeerPerSecond = perPeerPerSecond; self.perPeerBurst = perPeerBurst
            self.globalPerSecond = globalPerSecond; self.globalBurst = globalBurst
            self.maxTrackedPeers = maxTrackedPeers
        }
    }

    private struct Bucket: Sendable {
        var tokens: Double
        var at: UInt64
        mutating func refill(_ now: UInt64, rate: Double, burst: Double) {
            if now > at { tokens = min(burst, tokens + Double(now - at) / 1000 * rate); at = now }
        }
    }

    public let config: Config
    private var global: Bucket
    private var peers: [String: Bucket] = [:]
    /// Refused since the last `takeSuppressed()`.
    public private(set) var suppressed = 0
    /// Refused in total.
    public private(set) var refusedTotal = 0

    public init(_ config: Config) {
        self.config = config
        global = Bucket(tokens: config.globalBurst, at: 0)
    }

    public var trackedPeers: Int { peers.count }

    /// Takes one token for `peer` (and one global); false when either is empty.
    public mutating func allow(_ peer: String, now: UInt64) -> Bool {
        global.refill(now, rate: config.globalPerSecond, burst: config.globalBurst)
        var b = peers[peer] ?? Bucket(tokens: config.perPeerBurst, at: now)
        b.refill(now, rate: config.perPeerPerSecond, burst: config.perPeerBurst)
        guard global.tokens >= 1, b.tokens >= 1 else {
            suppressed += 1
            refusedTotal += 1
            track(peer, b, now: now)
            return false
        }
        global.tokens -= 1
        b.tokens -= 1
        track(peer, b, now: now)
        return true
    }

    private mutating func track(_ peer: String, _ b: Bucket, now: UInt64) {
        if peers[peer] != nil || peers.count < config.maxTrackedPeers { peers[peer] = b; return }
        let rate = config.perPeerPerSecond, burst = config.perPeerBurst
        peers = peers.filter { _, v in var v = v; v.refill(now, rate: rate, burst: burst); return v.tokens < burst }
        if peers.count < config.maxTrackedPeers { peers[peer] = b }
    }

    /// The refusals since the last call (for "N more suppressed" log lines), resetting the count.
    public mutating func takeSuppressed() -> Int {
        defer { suppressed = 0 }
        return suppressed
    }
}
