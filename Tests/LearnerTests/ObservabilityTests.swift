import Actor
import Foundation
import Learner
import Telemetry
import Testing
import TestSupport
import Training
import Transport
import Wire

/// `/metrics` and `rlif status` against a real running learner: real ZeroMQ sockets (ipc://), a real actor, a
/// real HTTP server on loopback read with a plain TCP socket.
@Suite(.serialized) struct ObservabilityTests {
    /// GET `path` from 127.0.0.1:`port` over a plain socket; returns the body.
    static func httpGet(port: UInt16, path: String) throws -> (status: String, body: String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw POSIXError(.ECONNREFUSED) }
        let req = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        _ = req.withCString { send(fd, $0, strlen($0), 0) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        let text = String(decoding: out, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return (text, "") }
        return (String(text[..<split.lowerBound].prefix { $0 != "\r" }), String(text[split.upperBound...]))
    }

    /// The value of an unlabelled (or exactly labelled) sample line `name` in a scrape.
    static func sample(_ body: String, _ name: String) -> Double? {
        for line in body.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == name { return Double(parts[1]) }
        }
        return nil
    }

    @Test func metricsAndStatusOfARunningLearner() throws {
        let h = try DistributedTests.Harness(steps: 200, perStep: 2)
        let metrics = LearnerMetrics()
        let endpoint = try MetricsEndpoint(address: "127.0.0.1:0", registry: metrics.registry)
        defer { endpoint.stop() }
        #expect(endpoint.port != 0)
        h.server.onStatus = { metrics.update($0) }
        let stepped = DispatchSemaphore(value: 0)
        h.server.onStep = { r in if r.record.step == 2 { stepped.signal() } }
        h.start()

        // Before any actor: the learner answers with step 0 and no actors.
        let before = try StatusClient.fetch(h.endpoints, timeoutMs: 10_000)
        #expect(before.runId == "test" && before.completedSteps == 0 && before.totalSteps == 200 && before.actors.isEmpty)

        let a = DistributedTests.ActorThread(h.endpoints, id: "obs-actor")
        #expect(stepped.wait(timeout: .now() + 60) == .success, "no second step")
        let s = try StatusClient.fetch(h.endpoints, timeoutMs: 10_000)
        #expect(s.completedSteps >= 2 && s.groupsAccepted >= 4)
        let row = try #require(s.actors.first { $0.id == "obs-actor" }, "actors: \(s.actors)")
        #expect(row.weightVersion >= 1 && row.groupsAccepted >= 1 && row.bytesSent > 0 && row.tokensPerSecond > 0)
        #expect(s.weightBytesSent >= row.bytesSent && s.rewardMean != nil && s.secondsPerStep != nil)
        #expect(s.table.contains("obs-actor") && s.table.contains("step \(s.completedSteps)/200"))

        // The scrape follows within the status period (1 s).
        var scraped = ""
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let (status, body) = try Self.httpGet(port: endpoint.port, path: "/metrics")
            #expect(status.hasPrefix("HTTP/1.1 200"))
            scraped = body
            if (Self.sample(body, "rlif_step") ?? 0) >= 2 { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect((Self.sample(scraped, "rlif_step") ?? 0) >= 2, "\(scraped)")
        #expect(Self.sample(scraped, "rlif_total_steps") == 200)
        #expect(Self.sample(scraped, "rlif_live_actors") == 1)
        #expect((Self.sample(scraped, #"rlif_groups_total{status="accepted"}"#) ?? 0) >= 4)
        #expect(Self.sample(scraped, "rlif_weight_bytes_sent_total").map { $0 > 0 } == true)
        #expect(Self.sample(scraped, "rlif_resident_memory_bytes").map { $0 > 1e6 } == true)
        #expect(scraped.contains(#"rlif_actor_weight_version{actor="obs-actor"}"#))
        #expect(scraped.contains("# TYPE rlif_groups_total counter"))
        #expect(try Self.httpGet(port: endpoint.port, path: "/nothing").status.hasPrefix("HTTP/1.1 404"))

        h.server.stopFlag.set(signal: SIGTERM)
        #expect(h.wait(), "learner did not stop")
        #expect(a.wait(), "actor did not finish")
        if let e = h.error ?? a.error { Issue.record("failed: \(e)") }
    }

    @Test func statusOfNoLearnerTimesOutNamingTheEndpoint() throws {
        let dir = try Fixtures.temporaryDirectory("rlif-status")
        defer { try? FileManager.default.removeItem(at: dir) }
        let e = try Endpoints(base: "ipc://\(dir.path)/none")
        let err = #expect(throws: StatusClient.Failure.self) { try StatusClient.fetch(e, timeoutMs: 300) }
        #expect(err?.description.contains(e.work) == true && err?.description.contains("no status reply") == true)
    }

    @Test func metricsAddressIsParsedOrRefused() throws {
        #expect(try MetricsEndpoint.parse("127.0.0.1:9464") == ("127.0.0.1", 9464))
        #expect(try MetricsEndpoint.parse("*:9464") == ("0.0.0.0", 9464))
        #expect(throws: MetricsEndpoint.AddressError.self) { try MetricsEndpoint.parse("localhost") }
        #expect(throws: MetricsEndpoint.AddressError.self) { try MetricsEndpoint.parse("example.com:80") }
        #expect(throws: MetricsEndpoint.AddressError.self) { try MetricsEndpoint.parse("1.2.3.4:99999") }
    }
}
