import Testing
import Transport
@testable import Learner

/// PeerGuard: the learner's per-peer trust rules without sockets (time passed in).
@Suite struct PeerGuardTests {
    @Test func curveKeysAreBoundToActorIdsAndRevokedOrBannedKeysAreDropped() {
        var g = PeerGuard(limits: AbuseLimits(), curve: true)
        #expect(g.hello(actor: "a1", key: "KEY-A", admitted: 0, known: false) == nil)
        #expect(g.admit(actor: "a1", key: "KEY-A", listed: true) == .ok)
        if case .drop(let why) = g.admit(actor: "a1", key: "KEY-B", listed: true) { #expect(why.contains("belongs to key KEY-A")) } else {
            Issue.record("another key spoke for a1")
        }
        #expect(g.admit(actor: "a1", key: nil, listed: false) != .ok, "no key under CURVE")
        #expect(g.admit(actor: "a1", key: "KEY-A", listed: false) != .ok, "revoked: no longer listed")
        #expect(g.actors(of: "KEY-A") == ["a1"])
        g.ban(actor: "a1")
        #expect(g.admit(actor: "a2", key: "KEY-A", listed: true) != .ok, "a banned key is banned for every actor id")
        #expect(g.dropped == 4)
        g.forget(actor: "a1")
        #expect(g.admit(actor: "a1", key: "KEY-C", listed: true) != .ok, "a banned actor id stays banned")
    }

    @Test func admissionLimitsAndBoundedConnectionMemory() {
        var l = AbuseLimits()
        l.maxActors = 2; l.maxActorsPerKey = 1; l.connectionsPerKey = 3
        var g = PeerGuard(limits: l, curve: true)
        #expect(g.hello(actor: "a", key: "K1", admitted: 0, known: false) == nil)
        #expect(g.hello(actor: "b", key: "K1", admitted: 1, known: false)?.contains("already has 1 actors") == true)
        #expect(g.hello(actor: "c", key: "K2", admitted: 1, known: false) == nil)
        #expect(g.hello(actor: "d", key: "K3", admitted: 2, known: false)?.contains("too many actors") == true)
        #expect(g.hello(actor: "a", key: "K1", admitted: 2, known: true) == nil, "a restart of an admitted actor")
        for fd in Int32(10)..<20 { g.saw(key: "K1", fd: fd) }
        #expect(g.connections(of: "K1") == [17, 18, 19])
    }

    @Test func errorRepliesAndLogLinesAreRateLimited() {
        var g = PeerGuard(limits: AbuseLimits(), curve: false)
        let replies = (0..<20_000).filter { g.mayReply(to: "spammer", now: UInt64($0 / 10)) }.count
        #expect(replies <= 5 + 2 * 2 + 1, "\(replies) error replies to one peer in 2 s")
        var lines = 0, lastSuppressed = 0
        for i in 0..<20_000 {
            let (ok, s) = g.mayLog(now: UInt64(i / 10))
            if ok { lines += 1; lastSuppressed = s }
        }
        #expect(lines <= 20 + 5 * 2 + 1 && lastSuppressed > 0, "\(lines) log lines; the last one reports \(lastSuppressed) suppressed")
        #expect(g.admit(actor: "anyone", key: nil, listed: true) == .ok, "without CURVE only bans apply")
    }
}

/// Which groups `verify_rewards` re-scores: Shared's SplitMix64 gives the bits of the hand-written splitmix64 of
/// (task id + seed·γ) it replaced, so the same groups are sampled as before the merge; and the fraction holds.
@Suite struct VerificationSampleTests {
    static func handWritten(taskId: UInt64, seed: UInt64) -> Double {
        var z = taskId &+ seed &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53)
    }

    @Test func sampleMatchesTheHandWrittenHashAndItsFraction() {
        var picked = 0
        for seed: UInt64 in [0, 1, 7, .max] {
            for task: UInt64 in (0..<500).map({ $0 &* 2_654_435_761 }) {
                for f in [0.1, 0.5, 0.9] {
                    let sampled = GRPOLearnerCompute.isSampledForVerification(taskId: task, seed: seed, fraction: f)
                    #expect(sampled == (Self.handWritten(taskId: task, seed: seed) < f), "task \(task) seed \(seed) fraction \(f)")
                    if f == 0.5 && sampled { picked += 1 }
                }
            }
        }
        #expect(picked > 850 && picked < 1150, "about half of 2000 (\(picked))")
        #expect(!GRPOLearnerCompute.isSampledForVerification(taskId: 3, seed: 3, fraction: 0))
        #expect(GRPOLearnerCompute.isSampledForVerification(taskId: 3, seed: 3, fraction: 1))
    }
}
