import Wire

/// The actor's side of the Clone pattern as pure logic (no sockets, no threads; `now` in monotonic ms): which
/// weight version to fetch, chunk requests under credit, assembly, hand-over to the worker for installing, and
/// what to do when the learner moves on or restarts. `ActorClient` sends the requests it returns and hands the
/// assembled snapshot to its worker; `WeightSyncTests` replays fetches without sockets.
///
/// Versions belong to one learner incarnation: after `learnerRestarted` the weights the worker holds are from a
/// timeline that no longer exists (a resumed learner may be *behind* them), so `held` drops to 0 and the new
/// incarnation's current version is fetched before anything is sampled.
///
/// In a LoRA run where this actor applies adapters (`Mode.adapters`), the frozen base is fetched first, once, and
/// then every version as its adapters only. The base is tied to the learner incarnation too: a restarted learner
/// is a new process with a new run id (`rlif learner` draws one at every start, `--resume` included) that loaded
/// its base from files again, and nothing on the wire proves they are the files of the old one (a resume may
/// point at another model), so the base is fetched again after a restart — once, like at the start.
public struct WeightSync: Sendable {
    public struct Config: Sendable, Equatable {
        /// Chunks requested at once (credit-based flow control on the weights socket).
        public var chunkCredits: Int
        /// A fetch with no chunk for this long asks again from its first missing chunk.
        public var stallMs: UInt64
        public init(chunkCredits: Int = 4, stallMs: UInt64 = 5000) {
            self.chunkCredits = max(1, chunkCredits); self.stallMs = stallMs
        }
    }

    /// What the learner sends this actor.
    public enum Mode: Sendable, Equatable {
        /// Every version as full weights (full fine-tuning, or merged W + s·B·A for an actor without adapters).
        case full
        /// LoRA with the adapters applied here: the frozen base once (in `baseDType`; `.unspecified` = the learner's
        /// weight dtype), then adapter-only versions.
        case adapters(baseDType: DType)
    }

    /// What `accept(chunk:)` did.
    public enum ChunkOutcome: Sendable {
        /// Not for the current fetch (a late chunk of an abandoned one).
        case ignored
        /// Stored; send these requests.
        case requests([SnapshotRequest])
        /// The snapshot is complete and verified: hand it to the worker (then call `installed`), and send `next`
        /// (after the frozen base: the current version's adapters, fetched while the base installs).
        case assembled(AssembledSnapshot, fetchMs: UInt64, next: [SnapshotRequest])
        /// The chunk or the assembled snapshot failed a check: the fetch starts over with these requests.
        case refused(String, [SnapshotRequest])
    }

    private struct Fetch: Sendable {
        let kind: SnapshotKind
        var version: UInt64  // 0 = whatever is current (fixed by the first chunk); always 0 for the frozen base
        var assembler: SnapshotAssembler
        var nextChunk: UInt32 = 0
        var inFlight = 0
        var lastActivity: UInt64
        let started: UInt64
    }

    public let config: Config
    /// The installed version usable in the current learner incarnation (0 = none).
    public private(set) var held: UInt64 = 0
    /// The newest version announced by the current incarnation (notice, heartbeat, welcome, work item).
    public private(set) var newestKnown: UInt64 = 0
    /// The model config is known (Welcome): fetching before it would assemble weights for no model.
    public private(set) var configured = false
    public private(set) var mode = Mode.full
    /// `.adapters`: the frozen base is installed (in the current learner incarnation).
    public private(set) var baseHeld = false
    private var fetch: Fetch?
    /// Snapshots handed to the worker and not yet reported installed, oldest first, with the incarnation count
    /// they belong to (a snapshot of a dead incarnation installs, but does not count as held).
    private var installs: [(version: UInt64, kind: SnapshotKind, incarnation: Int)] = []
    private var incarnation = 0

    public init(config: Config = Config()) { self.config = config }

    public var fetchingVersion: UInt64? { fetch?.version }
    public var fetchingKind: SnapshotKind? { fetch?.kind }
    public var isInstalling: Bool { installs.contains { $0.incarnation == incarnation } }
    /// `.adapters` and the frozen base not installed yet.
    public var needsBase: Bool { mode != .full && !baseHeld }
    /// Nothing to fetch or install: the worker holds the newest known version (and, with adapters, the base).
    public var isCurrent: Bool { fetch == nil && !isInstalling && held >= newestKnown && !needsBase }

    /// The learner's model config arrived (with `mode`: Welcome.lora); a (re)configured model holds no weights.
    public mutating func configure(mode: Mode = .full, now: UInt64) -> [SnapshotRequest] {
        configured = true
        self.mode = mode
        held = 0
        baseHeld = false
        fetch = nil
        return note(version: newestKnown, now: now)
    }

    /// The learner announced `version`: fetch it when it is newer than what is held, installing or fetched. With
    /// adapters, the frozen base comes first (its fetch blocks version fetches; its install does not, because the
    /// worker installs a base before the adapters handed over with or after it).
    public mutating func note(version v: UInt64, now: UInt64) -> [SnapshotRequest] {
        newestKnown = max(newestKnown, v)
        guard configured else { return [] }
        if needsBase && !installs.contains(where: { $0.incarnation == incarnation && $0.kind == .frozenBase }) {
            if fetch?.kind == .frozenBase { return [] }
            return start(kind: .frozenBase, version: 0, now: now)
        }
        guard newestKnown > held else { return [] }
        if installs.contains(where: { $0.incarnation == incarnation && $0.kind != .frozenBase && $0.version >= newestKnown }) { return [] }
        if let f = fetch, f.version == 0 || f.version >= newestKnown { return [] }
        return start(kind: mode == .full ? .full : .adapter, version: newestKnown, now: now)
    }

    private mutating func start(kind: SnapshotKind, version: UInt64, now: UInt64) -> [SnapshotRequest] {
        fetch = Fetch(kind: kind, version: version, assembler: SnapshotAssembler(version: version == 0 ? nil : version),
                      lastActivity: now, started: now)
        return requests(now: now)
    }

    /// Requests for the chunks not yet asked for, up to the credit.
    private mutating func requests(now: UInt64) -> [SnapshotRequest] {
        guard let f = fetch else { return [] }
        let want = config.chunkCredits - f.inFlight
        guard want > 0 else { return [] }
        // Before the first chunk the count is unknown: ask for `credits` from 0; afterwards only missing ones.
        let total = f.assembler.nChunks.map(UInt32.init) ?? UInt32.max
        guard f.nextChunk < total else { return [] }
        let n = UInt32(min(want, Int(min(total - f.nextChunk, UInt32(want)))))
        var r = SnapshotRequest(version: f.version, firstChunk: f.nextChunk, credits: n, kind: f.kind)
        if f.kind == .frozenBase, case .adapters(let dtype) = mode { r.dtype = dtype }
        fetch!.nextChunk += n
        fetch!.inFlight += Int(n)
        fetch!.lastActivity = now
        return [r]
    }

    /// A chunk (header, and the bytes when they came as a separate frame).
    public mutating func accept(chunk c: SnapshotChunk, data: UnsafeRawBufferPointer?, now: UInt64) -> ChunkOutcome {
        // Only scalars are read out of `fetch`, and the assembler is mutated in place through `fetch!`: a copy of the
        // struct (a `let f = fetch` still alive below) would share the assembler's whole-snapshot buffer, and every
        // chunk would then copy all of it (copy-on-write: 2.5 GB per 4 MB chunk for a Qwen2.5-0.5B base).
        guard let kind = fetch?.kind, let version = fetch?.version, let inFlight = fetch?.inFlight,
              c.kind == kind, c.version == version || version == 0 else { return .ignored }
        if version == 0 { fetch!.version = c.version }
        fetch!.inFlight = max(0, inFlight - 1)
        fetch!.lastActivity = now
        do {
            if try fetch!.assembler.accept(c, data: data) {
                let snap = try fetch!.assembler.finish()
                let ms = now - fetch!.started
                fetch = nil
                installs.append((snap.version, snap.kind, incarnation))
                return .assembled(snap, fetchMs: ms, next: note(version: newestKnown, now: now))
            }
        } catch SnapshotError.duplicateChunk {
            // A chunk asked for twice (the stall retry, or a request the learner answered late) and already
            // verified and stored: nothing to redo. Restarting would loop on a large snapshot.
            return .requests(requests(now: now))
        } catch {
            let v = fetch?.version ?? c.version
            fetch = nil
            let what = kind == .frozenBase ? "frozen base" : "\(kind == .adapter ? "adapters" : "weights") v\(v)"
            return .refused("\(what): \(error)", start(kind: kind, version: v, now: now))
        }
        return .requests(requests(now: now))
    }

    /// The worker installed `version` of `kind` (the oldest outstanding hand-over of that kind and version;
    /// older versions were replaced; a base is never replaced, so it stays listed until installed).
    public mutating func installed(version v: UInt64, kind: SnapshotKind = .full, now: UInt64) -> [SnapshotRequest] {
        let base = kind == .frozenBase
        if let i = installs.firstIndex(where: { ($0.kind == .frozenBase) == base && $0.version == v }) {
            let inc = installs[i].incarnation
            // Hand-overs of the same sort before it were replaced in the mailbox: they will not report.
            var k = 0
            installs.removeAll { e in defer { k += 1 }; return k <= i && (e.kind == .frozenBase) == base }
            if inc == incarnation { if base { baseHeld = true } else { held = v } }
        }
        return note(version: newestKnown, now: now)
    }

    /// The learner no longer serves the version being fetched: fetch whatever is current (of the same kind).
    public mutating func versionNotServed(now: UInt64) -> [SnapshotRequest] {
        guard let f = fetch else { return [] }
        fetch = nil
        return start(kind: f.kind, version: 0, now: now)
    }

    /// Periodic: a fetch with no chunk for `stallMs` (chunks lost with a connection, or past a high-water mark)
    /// asks again from its first missing chunk.
    public mutating func tick(now: UInt64) -> [SnapshotRequest] {
        guard let f = fetch, now >= f.lastActivity, now - f.lastActivity > config.stallMs else { return [] }
        fetch!.inFlight = 0
        fetch!.nextChunk = UInt32(f.assembler.missingChunks.first ?? 0)
        return requests(now: now)
    }

    /// The sockets were rebuilt: requests in flight are lost; the fetch restarts with the next `note`.
    public mutating func connectionReset() { fetch = nil }

    /// A new learner incarnation: versions of the old one mean nothing now. Forget what is held (the frozen base
    /// too: see the type's comment), announced, fetched and being installed; the new incarnation's announcements
    /// start a fresh fetch.
    public mutating func learnerRestarted() {
        incarnation += 1
        held = 0
        baseHeld = false
        newestKnown = 0
        fetch = nil
    }
}

/// Which learner incarnation an actor talks to, as pure logic: the first one seen, a new one (the learner
/// restarted), or a late message of one already left behind (still queued on another socket after the switch),
/// which must be dropped rather than taken for yet another restart.
public struct IncarnationTracker: Sendable, Equatable {
    public enum Verdict: Sendable, Equatable {
        /// Carry on: the current incarnation, the first one seen, or a message without one (0).
        case current
        /// A new incarnation: drop everything tied to `from`, then handle the message.
        case restarted(from: UInt64)
        /// A message of an incarnation already left behind: drop it.
        case late
    }

    public private(set) var current: UInt64 = 0
    private var retired: Set<UInt64> = []

    public init() {}

    public mutating func observe(_ incarnation: UInt64) -> Verdict {
        guard incarnation != 0, incarnation != current else { return .current }
        if retired.contains(incarnation) { return .late }
        let old = current
        current = incarnation
        guard old != 0 else { return .current }
        retired.insert(old)
        return .restarted(from: old)
    }
}
