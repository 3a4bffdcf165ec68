import CZeroMQ
import Foundation
import Testing

/// libzmq through the raw C API (no Transport wrapper): PUSH/PULL and PUB/SUB round trips of a multi-MB
/// multipart message over tcp (127.0.0.1, ephemeral port) and ipc (unique /tmp path).
@Suite struct ZeroMQShimTests {
    /// Frames of 1 KB, 3 MB and 2 MB + 5 bytes of a byte pattern that differs per frame and position.
    static let frames: [[UInt8]] = [1024, 3 << 20, (2 << 20) + 5].enumerated().map { f, n in
        (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13 &+ f &* 77) }
    }

    static func check(_ rc: Int32, _ what: String) throws {
        if rc != 0 {
            let e = zmq_errno()
            throw ShimError("\(what): \(String(cString: zmq_strerror(e))) (errno \(e))")
        }
    }

    struct ShimError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    static func lastEndpoint(_ s: UnsafeMutableRawPointer) throws -> String {
        var buf = [CChar](repeating: 0, count: 256)
        var len = buf.count
        try check(zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, &buf, &len), "getsockopt ZMQ_LAST_ENDPOINT")
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func sendAll(_ s: UnsafeMutableRawPointer, _ frames: [[UInt8]]) throws {
        for (i, f) in frames.enumerated() {
            let flags = i < frames.count - 1 ? ZMQ_SNDMORE : 0
            let rc = f.withUnsafeBytes { zmq_send(s, $0.baseAddress, $0.count, flags) }
            #expect(rc == Int32(f.count), "zmq_send frame \(i)")
        }
    }

    /// Receives one multipart message with zmq_msg_recv; nil after `timeoutMs` with nothing.
    static func receiveAll(_ s: UnsafeMutableRawPointer, timeoutMs: Int) throws -> [[UInt8]]? {
        var item = zmq_pollitem_t(socket: s, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
        guard zmq_poll(&item, 1, timeoutMs) == 1 else { return nil }
        var out: [[UInt8]] = []
        var msg = zmq_msg_t()
        try check(zmq_msg_init(&msg), "zmq_msg_init")
        defer { zmq_msg_close(&msg) }
        repeat {
            let n = zmq_msg_recv(&msg, s, 0)
            guard n >= 0 else { try check(-1, "zmq_msg_recv"); return nil }
            out.append(Array(UnsafeRawBufferPointer(start: zmq_msg_data(&msg), count: zmq_msg_size(&msg))))
        } while zmq_msg_more(&msg) != 0
        return out
    }

    func withContext(_ body: (UnsafeMutableRawPointer) throws -> Void) throws {
        let ctx = try #require(zmq_ctx_new())
        defer { zmq_ctx_term(ctx) }
        try body(ctx)
    }

    func pushPull(_ endpoint: String) throws {
        try withContext { ctx in
            let pull = try #require(zmq_socket(ctx, ZMQ_PULL))
            let push = try #require(zmq_socket(ctx, ZMQ_PUSH))
            var linger: Int32 = 0
            zmq_setsockopt(pull, ZMQ_LINGER, &linger, 4)
            zmq_setsockopt(push, ZMQ_LINGER, &linger, 4)
            defer { zmq_close(push); zmq_close(pull) }
            try Self.check(zmq_bind(pull, endpoint), "bind \(endpoint)")
            let real = try Self.lastEndpoint(pull)
            defer { if real.hasPrefix("ipc://") { unlink(String(real.dropFirst(6))) } }
            try Self.check(zmq_connect(push, real), "connect \(real)")
            try Self.sendAll(push, Self.frames)
            let got = try #require(try Self.receiveAll(pull, timeoutMs: 5000), "nothing on \(real)")
            #expect(got == Self.frames)
        }
    }

    func pubSub(_ endpoint: String) throws {
        try withContext { ctx in
            let pub = try #require(zmq_socket(ctx, ZMQ_PUB))
            let sub = try #require(zmq_socket(ctx, ZMQ_SUB))
            var linger: Int32 = 0
            zmq_setsockopt(pub, ZMQ_LINGER, &linger, 4)
            zmq_setsockopt(sub, ZMQ_LINGER, &linger, 4)
            defer { zmq_close(sub); zmq_close(pub) }
            try Self.check(zmq_bind(pub, endpoint), "bind \(endpoint)")
            let real = try Self.lastEndpoint(pub)
            defer { if real.hasPrefix("ipc://") { unlink(String(real.dropFirst(6))) } }
            try Self.check(zmq_setsockopt(sub, ZMQ_SUBSCRIBE, nil, 0), "subscribe")
            try Self.check(zmq_connect(sub, real), "connect \(real)")
            // Slow joiner: publish probes until the subscription has reached the publisher.
            var joined = false
            for _ in 0..<500 where !joined {
                try Self.sendAll(pub, [[0]])
                joined = try Self.receiveAll(sub, timeoutMs: 10) != nil
            }
            try #require(joined, "subscriber never joined \(real)")
            try Self.sendAll(pub, Self.frames)
            var got: [[UInt8]]
            repeat { got = try #require(try Self.receiveAll(sub, timeoutMs: 5000)) } while got == [[0]]
            #expect(got == Self.frames)
        }
    }

    static func ipc(_ name: String) -> String {
        "ipc:///tmp/rlif-shim-\(ProcessInfo.processInfo.processIdentifier)-\(name)-\(UUID().uuidString.prefix(8)).sock"
    }

    @Test func pushPullTCP() throws { try pushPull("tcp://127.0.0.1:*") }
    @Test func pushPullIPC() throws { try pushPull(Self.ipc("pushpull")) }
    @Test func pubSubTCP() throws { try pubSub("tcp://127.0.0.1:*") }
    @Test func pubSubIPC() throws { try pubSub(Self.ipc("pubsub")) }
}
