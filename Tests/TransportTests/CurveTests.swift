import Foundation
import Testing
@testable import Transport

/// CURVE keys, key files, the ZAP decision and real CURVE sockets on loopback (tcp 127.0.0.1 and ipc).
@Suite(.serialized) struct CurveTests {
    static func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("rlif-curve-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    static func mode(_ path: String) -> mode_t {
        var st = stat()
        _ = stat(path, &st)
        return st.st_mode & 0o777
    }

    @Test func keyFilesRoundTripWithPrivateSecretsAndNoOverwrite() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pair = try CurveKeyPair.generate()
        let prefix = dir.appendingPathComponent("actor1").path
        let files = try CurveKeyFiles.write(pair, prefix: prefix, comment: "test key")
        #expect(Self.mode(files.secret) == 0o600)
        #expect(Self.mode(files.pub) & 0o077 != 0o077 && Self.mode(files.pub) & 0o400 != 0)
        #expect(try CurveKeyFiles.readPublic(files.pub) == pair.publicKey)
        let back = try CurveKeyFiles.readSecret(files.secret)
        #expect(back.secretKey == pair.secretKey && back.publicKey == pair.publicKey, "public key derived from the secret")
        #expect(throws: CurveKeyError.self) { try CurveKeyFiles.write(pair, prefix: prefix, comment: "again") }
        // A secret others can read is refused, saying how to fix it.
        chmod(files.secret, 0o644)
        do { _ = try CurveKeyFiles.readSecret(files.secret); Issue.record("a 0644 secret was accepted") } catch {
            #expect("\(error)".contains("chmod 600") && "\(error)".contains(files.secret))
        }
    }

    @Test func authorizedKeysFromAFileOrADirectoryAndBadLinesNamed() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = try CurveKeyPair.generate(), b = try CurveKeyPair.generate()
        let file = dir.appendingPathComponent("keys").path
        try "# actors\n\n\(a.publicKey) actor-a\n  \(b.publicKey)\n".write(toFile: file, atomically: true, encoding: .utf8)
        let k = try AuthorizedKeys.load(file)
        #expect(k.count == 2 && k.label(a.publicKey) == "actor-a" && k.label(b.publicKey) == b.publicKey.short)
        let sub = dir.appendingPathComponent("keys.d")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        try CurveKeyFiles.write(a, prefix: sub.appendingPathComponent("host1").path, comment: "x")
        try "not a key".write(to: sub.appendingPathComponent("README"), atomically: true, encoding: .utf8)
        let d = try AuthorizedKeys.load(sub.path)
        #expect(d.count == 1 && d.label(a.publicKey) == "host1", "only .pub files, labelled by file name")
        try "\(a.publicKey)\nTYPO\(b.publicKey)\n".write(toFile: file, atomically: true, encoding: .utf8)
        do { _ = try AuthorizedKeys.load(file); Issue.record("a bad line was accepted") } catch {
            #expect("\(error)".hasPrefix("\(file):2:"), "\(error)")
        }
    }

    @Test func bindPolicyRefusesOpenTCPWithoutCurve() throws {
        for local in ["ipc:///tmp/x", "tcp://127.0.0.1:5555", "tcp://127.3.2.1:5", "tcp://localhost:5555", "tcp://[::1]:5555", "tcp://lo:5555"] {
            #expect(BindPolicy.isLocal(local), "\(local)")
        }
        for open in ["tcp://*:5555", "tcp://0.0.0.0:5555", "tcp://10.0.0.5:5555", "tcp://eth0:5555", "tcp://learner:5555", "tcp://127.0.0.1.evil:5"] {
            #expect(!BindPolicy.isLocal(open), "\(open)")
        }
        let e = try Endpoints(base: "tcp://*:5555")
        do { try BindPolicy.check(e, curve: false, insecure: false); Issue.record("open bind accepted") } catch {
            #expect(error.description.contains("rlif keygen --out learner") && error.description.contains("--insecure"))
        }
        try BindPolicy.check(e, curve: true, insecure: false)
        try BindPolicy.check(e, curve: false, insecure: true)
        try BindPolicy.check(try Endpoints(base: "tcp://127.0.0.1:5555"), curve: false, insecure: false)
    }

    @Test func zapDecisionAdmitsOnlyListedCurveKeysAndBoundsItsQueue() throws {
        let a = try CurveKeyPair.generate(), b = try CurveKeyPair.generate()
        let raw = CurveKey.decode(a.publicKey.z85)!
        let access = CurveAccess(AuthorizedKeys([a.publicKey: "a"]))
        #expect(access.decide(mechanism: "CURVE", credential: raw, address: "1.2.3.4") == (true, a.publicKey.z85, "OK"))
        #expect(!access.decide(mechanism: "CURVE", credential: CurveKey.decode(b.publicKey.z85)!, address: "1.2.3.5").allowed)
        #expect(!access.decide(mechanism: "NULL", credential: nil, address: "1.2.3.6").allowed)
        #expect(!access.decide(mechanism: "CURVE", credential: [1, 2, 3], address: "1.2.3.7").allowed)
        let d = access.drainDenials()
        #expect(d.map(\.address) == ["1.2.3.5", "1.2.3.6", "1.2.3.7"] && d[0].key == b.publicKey && d[0].reason == "key not in the authorized keys")
        for i in 0..<1000 { _ = access.decide(mechanism: "CURVE", credential: Array(raw.reversed()), address: "\(i)") }
        #expect(access.drainDenials().count == CurveAccess.maxQueuedDenials)
        #expect(access.counters == .init(allowed: 1, denied: 1003, denialsNotQueued: 1000 - CurveAccess.maxQueuedDenials))
        #expect(access.replace(with: AuthorizedKeys([b.publicKey: "b"])) == [a.publicKey])
        #expect(!access.isAuthorized(userId: a.publicKey.z85) && access.isAuthorized(userId: b.publicKey.z85))
    }

    /// Real sockets: a ROUTER with CURVE + ZAP hears a listed key (and sees it as the message's User-Id), never an
    /// unlisted key or a plain client; after revocation and cutting its connection the key is heard no more.
    @Test(arguments: ["tcp://127.0.0.1:*", "ipc"])
    func curveRouterAdmitsOnlyListedKeysAndRevocationCutsOff(_ transport: String) throws {
        let server = try CurveKeyPair.generate(), good = try CurveKeyPair.generate(), bad = try CurveKeyPair.generate()
        let ctx = try ZMQContext()
        let access = CurveAccess(AuthorizedKeys([good.publicKey: "good"]))
        let zap = try ZAPHandler(context: ctx, access: access)
        defer { zap.stop() }
        let router = try ZMQSocket(ctx, .router)
        try router.setOption(.linger, 0)
        try router.setCurveServer(secretKey: server.secretKey)
        let ep = try bindLoopback(router, transport == "ipc" ? Loopback.ipc("curve") : transport)
        defer { Loopback.removeIPC(ep) }
        let clientCtx = try ZMQContext()
        func dealer(_ id: String, _ pair: CurveKeyPair?) throws -> ZMQSocket {
            let d = try ZMQSocket(clientCtx, .dealer)
            try d.setOption(.linger, 0)
            try d.setRoutingId(id)
            try d.setOption(.reconnectInterval, 50)
            if let pair { try d.setCurveClient(serverKey: server.publicKey, keyPair: pair) }
            try d.connect(ep)
            return d
        }
        let g = try dealer("good", good), b = try dealer("bad", bad), plain = try dealer("plain", nil)
        for d in [b, plain, g] { try d.send(frames: [Array("hello".utf8)], dontWait: true) }
        let got = try #require(try router.receiveFrames(timeoutMs: 5000), "the listed key was not heard")
        #expect(got == [Array("good".utf8), Array("hello".utf8)])
        #expect(router.lastPeer.userId == good.publicKey.z85 && router.lastPeer.fd >= 0)
        #expect(try router.receiveFrames(timeoutMs: 700) == nil, "an unlisted key or a plain client got through")
        #expect(access.counters.denied >= 1, "the unlisted key's handshake was denied")
        // Revocation: the list changes, the live connection is cut, the reconnect fails the handshake.
        let fd = router.lastPeer.fd
        access.replace(with: AuthorizedKeys([bad.publicKey: "bad-now-listed"]))
        #expect(ZMQSocket.cutConnection(fd: fd))
        var heardGood = false, heardBad = false
        for i in 0..<40 {
            // dontWait: once its handshake is refused the client may have no pipe, and a blocking send would wait.
            try g.send(frames: [Array("again-\(i)".utf8)], dontWait: true)
            while let m = try router.receiveFrames(timeoutMs: 50) {
                if m[0] == Array("good".utf8) { heardGood = true }
                if m[0] == Array("bad".utf8) { heardBad = true }
            }
        }
        #expect(!heardGood, "a revoked key was still heard after its connection was cut")
        #expect(!heardBad, "a client whose handshake was refused does not retry by itself (libzmq 4.3)")
        // The newly listed key connects now.
        let fresh = try dealer("fresh", bad)
        try fresh.send(frames: [Array("listed now".utf8)], dontWait: true)
        let m = try #require(try router.receiveFrames(timeoutMs: 5000), "a newly listed key was not heard")
        #expect(m == [Array("fresh".utf8), Array("listed now".utf8)] && router.lastPeer.userId == bad.publicKey.z85)
    }
}
