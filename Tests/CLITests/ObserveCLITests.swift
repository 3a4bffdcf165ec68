import Foundation
import Testing
import TestSupport

/// `--json` output, `rlif status` and `--metrics-addr` as a user runs them: the real executable, a real learner
/// process, its work socket (ipc://) and /metrics on loopback.
@Suite(.serialized, .enabled(if: CLI.binary != nil, "needs the release rlif binary (swift build -c release, or RLIF_BIN)"))
struct ObserveCLITests {
    static func object(_ line: Substring) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test func infoAndTrainPrintJSON() throws {
        let info = try CLI.run(["info", "--json"])
        #expect(info.status == 0)
        let i = try Self.object(Substring(info.out.trimmingCharacters(in: .newlines)))
        #expect(i["wire_protocol"] as? String == "rlif.v1" && i["openblas_threads"] is Int)

        let dir = try Fixtures.temporaryDirectory("rlif-cli-json")
        defer { try? FileManager.default.removeItem(at: dir) }
        let t = try CLI.run(["train", "--single-process", "--json", "--output-dir", dir.path, "--set", "steps=2",
                             "--set", "eval_every=0", "--set", "max_new_tokens=8"], timeout: 300)
        #expect(t.status == 0, "\(t.err)")
        // stdout is the summary alone; the step lines went to stderr.
        let lines = t.out.split(separator: "\n")
        #expect(lines.count == 1, "stdout: \(t.out)")
        let s = try Self.object(try #require(lines.last))
        #expect(s["completed_steps"] as? Int == 2 && s["total_steps"] as? Int == 2 && s["stopped"] as? Bool == false)
        #expect(s["output_dir"] as? String == dir.path)
        #expect(t.err.contains("step 2/2") && t.err.contains("s + train "))
    }

    @Test func statusAndMetricsOfALearnerProcess() throws {
        let dir = try Fixtures.temporaryDirectory("rlif-cli-status")
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = "ipc://\(dir.path)/l"
        let learner = try Spawned(["learner", "--bind", base, "--output-dir", dir.appendingPathComponent("out").path,
                                   "--set", "steps=5", "--set", "eval_every=0", "--metrics-addr", "127.0.0.1:0"])
        let p = learner.p
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        // The learner names the port the kernel chose; it serves once it says "serving on".
        _ = learner.waitFor("serving on", seconds: 120)
        let text = learner.err
        let m = try #require(text.firstMatch(of: /metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/), "\(text)")
        let port = try #require(UInt16(m.1))

        let json = try CLI.run(["status", "--learner", base, "--json"], timeout: 30)
        #expect(json.status == 0, "\(json.err)")
        let s = try Self.object(Substring(json.out))
        #expect(s["completed_steps"] as? Int == 0 && s["total_steps"] as? Int == 5)
        #expect((s["actors"] as? [Any])?.isEmpty == true && (s["run_id"] as? String)?.hasPrefix("out-") == true)
        let table = try CLI.run(["status", "--learner", base], timeout: 30)
        #expect(table.status == 0 && table.out.contains("step 0/5") && table.out.contains("(no live actors)"))

        var body = ""
        let until = Date().addingTimeInterval(10)
        while Date() < until {
            body = try LoopbackHTTP.get(port: port, path: "/metrics").body
            if LoopbackHTTP.sample(body, "rlif_total_steps") == 5 { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(LoopbackHTTP.sample(body, "rlif_total_steps") == 5 && LoopbackHTTP.sample(body, "rlif_live_actors") == 0, "\(body)")

        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(p.terminationStatus == 143)
    }

    @Test func badMetricsAddressFailsBeforeAnyWork() throws {
        for cmd in [["learner"], ["actor", "--learner", "ipc:///tmp/x"], ["train"]] {
            let r = try CLI.run(cmd + ["--metrics-addr", "localhost"])
            #expect(r.status == 64 && r.err.contains("--metrics-addr localhost: expected HOST:PORT"), "\(cmd): \(r.err)")
        }
        let single = try CLI.run(["train", "--single-process", "--metrics-addr", "127.0.0.1:9464"])
        #expect(single.status == 64 && single.err.contains("no learner"))
    }

    /// Local mode: the learner serves /metrics at the given port and actor i at port + i (issue 17: "learner and
    /// actors serve /metrics"; before, local mode passed the address to the learner only).
    @Test func localModeActorsServeMetricsOnTheNextPorts() throws {
        let dir = try Fixtures.temporaryDirectory("rlif-cli-local-metrics")
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = Int.random(in: 20_000..<60_000)
        let r = try CLI.run(["train", "--actors", "2", "--output-dir", dir.path, "--metrics-addr", "127.0.0.1:\(port)",
                             "--set", "steps=2", "--set", "eval_every=0", "--set", "max_new_tokens=8"], timeout: 300)
        #expect(r.status == 0, "\(r.err.suffix(3000))")
        let text = r.out + r.err
        for (who, p) in [("learner", port), ("actor-1", port + 1), ("actor-2", port + 2)] {
            #expect(text.contains(try Regex("\\b\(who)\\b.*metrics on http://127\\.0\\.0\\.1:\(p)/metrics")), "\(who) at \(p): \(text.suffix(3000))")
        }
        let high = try CLI.run(["train", "--actors", "2", "--output-dir", dir.appendingPathComponent("high").path,
                                "--metrics-addr", "127.0.0.1:65534"])
        #expect(high.status == 64 && high.err.contains("past 65535"), "\(high.err)")
    }

    @Test func statusWithoutALearnerFailsNamingTheEndpoint() throws {
        let r = try CLI.run(["status", "--learner", "ipc:///tmp/rlif-no-learner-\(getpid())", "--timeout", "0.3"])
        #expect(r.status != 0)
        #expect(r.err.contains("no status reply") && r.err.contains("rlif-no-learner"))
    }
}
