import Foundation
import Testing
@testable import Transport

/// Loopback round trips over real libzmq sockets (127.0.0.1 ephemeral ports and unique /tmp ipc paths only).
@Suite struct ZMQSocketTests {
    let context: ZMQContext
    init() throws { context = try ZMQContext() }

    /// A header frame, two multi-MB frames (sent zero-copy), a small frame and an empty frame.
    static func bigMessage(seed: UInt64) -> [[UInt8]] {
        [Array("chunk-header".utf8), randomBytes(3 << 20, seed: seed), randomBytes((5 << 20) + 3, seed: seed + 1),
         [1, 2, 3], []]
    }

    func pushPull(_ endpoint: String) throws {
        let pull = try ZMQSocket(context, .pull)
        let concrete = try bindLoopback(pull, endpoint)
        defer { Loopback.removeIPC(concrete) }
        let push = try ZMQSocket(context, .push)
        try push.connect(concrete)
        let msg = Self.bigMessage(seed: 10)
        #expect(try push.send(frames: msg))
        let got = try #require(try pull.receiveFrames(timeoutMs: 5000), "nothing received on \(concrete)")
        #expect(got.count == msg.count)
        for (i, (a, b)) in zip(got, msg).enumerated() { #expect(a == b, "frame \(i) differs (\(a.count) vs \(b.count) bytes)") }
    }

    @Test func pushPullTCPMultiFrameMultiMB() throws {
        try pushPull(Loopback.tcp)
    }

    @Test func pushPullIPCMultiFrameMultiMB() throws {
        try pushPull(Loopback.ipc("pushpull"))
    }

    func pubSub(_ endpoint: String) throws {
        let pub = try ZMQSocket(context, .pub)
        let concrete = try bindLoopback(pub, endpoint)
        defer { Loopback.removeIPC(concrete) }
        let sub = try ZMQSocket(context, .sub)
        try sub.subscribe(Array("w".utf8))
        try sub.connect(concrete)
        // Slow joiner: the subscription reaches the PUB asynchronously. Probe until one arrives.
        var joined = false
        for _ in 0..<500 where !joined {
            try pub.send(frames: [Array("w-probe".utf8)])
            try pub.send(frames: [Array("x-filtered".utf8)])
            joined = try sub.receiveFrames(timeoutMs: 10) != nil
        }
        try #require(joined, "subscriber never joined \(concrete)")
        let msg = [Array("w-notice".utf8)] + Self.bigMessage(seed: 20)
        try pub.send(frames: msg)
        var got: [[UInt8]] = []
        repeat {
            got = try #require(try sub.receiveFrames(timeoutMs: 5000))
            #expect(got[0].first == UInt8(ascii: "w"), "prefix filter let through \(got[0])")
        } while got[0] == Array("w-probe".utf8)
        #expect(got == msg)
    }

    @Test func pubSubTCPMultiFrameMultiMB() throws {
        try pubSub(Loopback.tcp)
    }

    @Test func pubSubIPCMultiFrameMultiMB() throws {
        try pubSub(Loopback.ipc("pubsub"))
    }

    @Test func routerDealerWithRoutingIds() throws {
        let router = try ZMQSocket(context, .router)
        try router.setOption(.routerMandatory, 1)
        let concrete = try bindLoopback(router, Loopback.tcp)
        var dealers: [ZMQSocket] = []
        for name in ["actor-1", "actor-2"] {
            let d = try ZMQSocket(context, .dealer)
            try d.setRoutingId(name)
            try d.connect(concrete)
            dealers.append(d)
        }
        for (i, d) in dealers.enumerated() { try d.send(frames: [Array("hello from \(i + 1)".utf8)]) }
        var seen: [String: String] = [:]
        for _ in 0..<2 {
            let f = try #require(try router.receiveFrames(timeoutMs: 5000))
            #expect(f.count == 2, "ROUTER prepends the routing id frame")
            seen[String(decoding: f[0], as: UTF8.self)] = String(decoding: f[1], as: UTF8.self)
        }
        #expect(seen == ["actor-1": "hello from 1", "actor-2": "hello from 2"])
        // Replies are routed by id: each dealer gets only its own.
        try router.send(frames: [Array("actor-2".utf8), Array("for two".utf8)])
        try router.send(frames: [Array("actor-1".utf8), Array("for one".utf8)])
        #expect(try dealers[0].receiveFrames(timeoutMs: 5000) == [Array("for one".utf8)])
        #expect(try dealers[1].receiveFrames(timeoutMs: 5000) == [Array("for two".utf8)])
        #expect(try dealers[0].receiveFrames(timeoutMs: 0) == nil)
        // With ROUTER_MANDATORY an unknown peer is an error, not a silent drop.
        let err = #expect(throws: ZMQError.self) { try router.send(frames: [Array("actor-9".utf8), [0]]) }
        #expect(err?.isHostUnreachable == true)
        #expect(err?.description.contains(concrete) == true, "\(String(describing: err))")
        #expect(err?.description.contains("actor-9") == true, "\(String(describing: err))")
    }

    @Test func receiveTimesOut() throws {
        let pull = try ZMQSocket(context, .pull)
        _ = try bindLoopback(pull, Loopback.tcp)
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try pull.receiveFrames(timeoutMs: 80) == nil)
        let elapsed = clock.now - start
        #expect(elapsed >= .milliseconds(75) && elapsed < .seconds(2), "waited \(elapsed)")
        #expect(try pull.receiveFrames(timeoutMs: 0) == nil)
        #expect(try pull.withReceivedFrame(timeoutMs: 10) { _, _ in 1 } == nil)
    }

    @Test func badEndpointsGiveClearErrors() throws {
        let s = try ZMQSocket(context, .dealer)
        let e1 = #expect(throws: ZMQError.self) { try s.connect("tcp://127.0.0.1:notaport") }
        #expect(e1?.operation == "connect")
        #expect(e1?.description.contains("tcp://127.0.0.1:notaport") == true, "\(String(describing: e1))")
        let e2 = #expect(throws: ZMQError.self) { try s.bind("bogus://nowhere") }
        #expect(e2?.description.contains("bogus://nowhere") == true)
        #expect(e2?.message.isEmpty == false)
        let e3 = #expect(throws: ZMQError.self) { try s.bind("ipc:///tmp/rlif-no-such-dir-\(UUID().uuidString)/x.sock") }
        #expect(e3?.errno == ENOENT, "\(String(describing: e3))")
        s.close()
        let e4 = #expect(throws: ZMQError.self) { try s.connect("tcp://127.0.0.1:1") }
        #expect(e4?.description.contains("closed") == true)
    }

    @Test func optionsReadBack() throws {
        let s = try ZMQSocket(context, .dealer)
        #expect(try s.option(.linger) == 0, "context is non-blocky: linger defaults to 0")
        try s.setOption(.sendHighWaterMark, 7)
        try s.setOption(.receiveHighWaterMark, 9)
        try s.setOption(.heartbeatInterval, 250)
        try s.setOption(.heartbeatTimeout, 1000)
        try s.setOption(.reconnectInterval, 50)
        try s.setOption(.reconnectIntervalMax, 2000)
        try s.setOption(.tcpKeepalive, 1)
        try s.setMaxMessageSize(16 << 20)
        #expect(try s.option(.sendHighWaterMark) == 7)
        #expect(try s.option(.receiveHighWaterMark) == 9)
        #expect(try s.option(.heartbeatInterval) == 250)
        #expect(try s.option(.reconnectIntervalMax) == 2000)
        #expect(try s.option(.tcpKeepalive) == 1)
        let e = #expect(throws: ZMQError.self) { try s.setOption(.sendHighWaterMark, -5) }
        #expect(e?.operation.contains("ZMQ_SNDHWM") == true)
    }

    @Test func oversizedInboundMessageIsDropped() throws {
        // ZMQ_MAXMSGSIZE: the receiver drops a peer that sends more (the message never surfaces).
        let pull = try ZMQSocket(context, .pull)
        try pull.setMaxMessageSize(1000)
        let concrete = try bindLoopback(pull, Loopback.tcp)
        let push = try ZMQSocket(context, .push)
        try push.connect(concrete)
        try push.send(frames: [[UInt8](repeating: 7, count: 5000)])
        #expect(try pull.receiveFrames(timeoutMs: 200) == nil)
    }

    @Test func pollerReportsReadableSockets() throws {
        let a = try ZMQSocket(context, .pull), b = try ZMQSocket(context, .pull)
        let ea = try bindLoopback(a, Loopback.tcp), eb = try bindLoopback(b, Loopback.ipc("poll"))
        defer { Loopback.removeIPC(eb) }
        let pa = try ZMQSocket(context, .push), pb = try ZMQSocket(context, .push)
        try pa.connect(ea); try pb.connect(eb)
        let poller = ZMQPoller()
        #expect(poller.add(a) == 0)
        #expect(poller.add(b) == 1)
        #expect(try poller.poll(timeoutMs: 20) == [])
        try pb.send("to b")
        #expect(try poller.poll(timeoutMs: 5000) == [1])
        #expect(try b.receiveFrames(timeoutMs: 0) == [Array("to b".utf8)])
        try pa.send("to a"); try pb.send("to b again")
        var got: [Int: [UInt8]] = [:]
        for _ in 0..<100 where got.count < 2 {
            for i in try poller.poll(timeoutMs: 50) {
                got[i] = try #require(try poller.socket(i).receiveFrames(timeoutMs: 0)).first
            }
        }
        #expect(got == [0: Array("to a".utf8), 1: Array("to b again".utf8)])
    }

    @Test func reusedReceiveBuffersAndZeroCopyLifetime() throws {
        let pull = try ZMQSocket(context, .pull)
        let concrete = try bindLoopback(pull, Loopback.ipc("reuse"))
        defer { Loopback.removeIPC(concrete) }
        let push = try ZMQSocket(context, .push)
        try push.connect(concrete)
        // The zero-copy frame's array is dropped by the sender right after send: the box must keep it alive.
        do {
            let big = randomBytes(2 << 20, seed: 99)
            try push.sendZeroCopy(big, more: true)
            try push.send([9])
        }
        try push.send(frames: [[1], [2, 2], [3, 3, 3]])
        var frames: [[UInt8]] = []
        #expect(try pull.receive(into: &frames, timeoutMs: 5000))
        #expect(frames.count == 2 && frames[0] == randomBytes(2 << 20, seed: 99) && frames[1] == [9])
        let capacity = frames[0].capacity
        #expect(try pull.receive(into: &frames, timeoutMs: 5000))
        #expect(frames == [[1], [2, 2], [3, 3, 3]])
        #expect(frames[0].capacity == capacity, "the first frame's buffer is reused")
    }

    @Test func sendDontWaitReportsBackpressure() throws {
        // A PUSH with no peer cannot queue: dontWait returns false instead of blocking.
        let push = try ZMQSocket(context, .push)
        try push.bind(Loopback.tcp)
        #expect(try push.send(frames: [[1, 2, 3]], dontWait: true) == false)
        #expect(try push.sendZeroCopy(randomBytes(100_000, seed: 1), dontWait: true) == false)
    }

    @Test func shutdownWakesBlockedReceiver() throws {
        let ctx = try ZMQContext()
        let done = Atomic(false)
        let thread = Thread {
            do {
                let pull = try ZMQSocket(ctx, .pull)
                try pull.bind("inproc://shutdown-test")
                _ = try pull.receiveFrames()
            } catch let e as ZMQError {
                if e.isTerminated { done.set(true) }
            } catch {}
        }
        thread.start()
        Thread.sleep(forTimeInterval: 0.05)
        ctx.shutdown()
        for _ in 0..<200 where !done.get() { Thread.sleep(forTimeInterval: 0.01) }
        #expect(done.get(), "a receive blocked forever must end with ETERM after shutdown")
    }
}

/// A tiny lock-protected flag for cross-thread test signalling.
final class Atomic<T: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: every access to `value` holds `lock`.
    private let lock = NSLock()
    private var value: T
    init(_ v: T) { value = v }
    func get() -> T { lock.lock(); defer { lock.unlock() }; return value }
    func set(_ v: T) { lock.lock(); value = v; lock.unlock() }
}
