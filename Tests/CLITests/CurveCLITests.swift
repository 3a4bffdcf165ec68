import Foundation
import Testing
import TestSupport

/// `rlif keygen` and the learner's refusal to serve an open address without keys (before any model is loaded).
@Suite(.serialized, .enabled(if: CLI.binary != nil, "needs the release rlif binary (swift build -c release, or RLIF_BIN)"))
struct CurveCLITests {
    @Test func keygenWritesAPrivateSecretAndAPublicKeyAndNeverOverwrites() throws {
        let dir = try Fixtures.temporaryDirectory("rlif-keygen")
        defer { try? FileManager.default.removeItem(at: dir) }
        let prefix = dir.appendingPathComponent("actor1").path
        let r = try CLI.run(["keygen", "--out", prefix])
        #expect(r.status == 0, "\(r.err)")
        let attrs = try FileManager.default.attributesOfItem(atPath: prefix + ".secret")
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        let pub = try String(contentsOfFile: prefix + ".pub", encoding: .utf8)
        let key = pub.split(separator: "\n").last { !$0.hasPrefix("#") }.map(String.init) ?? ""
        #expect(key.count == 40 && r.out.contains(key), "the public key is printed: \(r.out)")
        let again = try CLI.run(["keygen", "--out", prefix])
        #expect(again.status != 0 && again.err.contains("refusing to overwrite"), "\(again.err)")
    }

    @Test func learnerOnAnOpenAddressWithoutKeysRefusesAndSaysHowToMakeThem() throws {
        let dir = try Fixtures.temporaryDirectory("rlif-insecure")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["learner", "--bind", "tcp://*:45555", "--output-dir", dir.appendingPathComponent("out").path])
        #expect(r.status != 0)
        #expect(r.err.contains("refusing to serve tcp://*:45555 without CURVE") && r.err.contains("rlif keygen --out learner"), "\(r.err)")
        // A secret key others can read is refused before anything else, naming the file.
        let prefix = dir.appendingPathComponent("learner").path
        #expect(try CLI.run(["keygen", "--out", prefix]).status == 0)
        chmod(prefix + ".secret", 0o644)
        let r2 = try CLI.run(["learner", "--bind", "tcp://*:45555", "--curve-secret", prefix + ".secret",
                              "--authorized-keys", prefix + ".pub", "--output-dir", dir.appendingPathComponent("out").path])
        #expect(r2.status != 0 && r2.err.contains(prefix + ".secret") && r2.err.contains("chmod 600"), "\(r2.err)")
    }

    /// Local mode stays on ipc:// without CURVE: its sockets are in a fresh directory only this user can enter.
    @Test func localModeSocketsLiveInAPrivateDirectory() throws {
        let d = try Fixtures.temporaryDirectory("rlif-localmode")
        defer { try? FileManager.default.removeItem(at: d) }
        let tmp = d.appendingPathComponent("tmp")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        let s = try Spawned(["train", "--actors", "1", "--output-dir", d.appendingPathComponent("out").path, "--set", "steps=3",
                             "--set", "prompts_per_step=2", "--set", "group_size=2", "--set", "max_new_tokens=8", "--set", "eval_every=0"],
                            env: ["TMPDIR": tmp.path])  // where the supervisor makes its socket directory
        let p = s.p
        var seen: [String: Int] = [:]
        while p.isRunning {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: tmp.path)) ?? [] where name.hasPrefix("rlif-") {
                let attrs = try? FileManager.default.attributesOfItem(atPath: tmp.appendingPathComponent(name).path)
                if let mode = attrs?[.posixPermissions] as? Int { seen[name] = mode }
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
        #expect(s.finish(seconds: 10) == 0)
        #expect(!seen.isEmpty, "never saw the socket directory")
        #expect(seen.values.allSatisfy { $0 == 0o700 }, "socket directory modes: \(seen)")
    }
}
