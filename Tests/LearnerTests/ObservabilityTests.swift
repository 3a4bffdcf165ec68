import Actor
import Foundation
import Learner
import Logging
import Telemetry
import Testing
import TestSupport
import Training
import Transport
import Wire

/// `/metrics` and `rlif status` against a real running learner: real ZeroMQ sockets (ipc://), a real actor, a
/// real HTTP server on loopback read with a plain TCP socket.
@Suite(.serialized) struct ObservabilityTests {
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

        // The actor serves its own /metrics, fed from its summary as `rlif actor --metrics-addr` does.
        let actorMetrics = ActorMetrics(actorId: "obs-actor")
        let actorEndpoint = try MetricsEndpoint(address: "127.0.0.1:0", registry: actorMetrics.registry)
        defer { actorEndpoint.stop() }
        let a = ActorRun(h.endpoints, id: "obs-actor") { $0.onSummary = { actorMetrics.update($0) } }
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
            let (status, body) = try LoopbackHTTP.get(port: endpoint.port, path: "/metrics")
            #expect(status.hasPrefix("HTTP/1.1 200"))
            scraped = body
            if (LoopbackHTTP.sample(body, "rlif_step") ?? 0) >= 2 { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect((LoopbackHTTP.sample(scraped, "rlif_step") ?? 0) >= 2, "\(scraped)")
        #expect(LoopbackHTTP.sample(scraped, "rlif_total_steps") == 200)
        #expect(LoopbackHTTP.sample(scraped, "rlif_live_actors") == 1)
        #expect((LoopbackHTTP.sample(scraped, #"rlif_groups_total{status="accepted"}"#) ?? 0) >= 4)
        #expect(LoopbackHTTP.sample(scraped, "rlif_weight_bytes_sent_total").map { $0 > 0 } == true)
        #expect(LoopbackHTTP.sample(scraped, "rlif_resident_memory_bytes").map { $0 > 1e6 } == true)
        #expect(scraped.contains(#"rlif_actor_weight_version{actor="obs-actor"}"#))
        #expect(scraped.contains("# TYPE rlif_groups_total counter"))
        #expect(try LoopbackHTTP.get(port: endpoint.port, path: "/nothing").status.hasPrefix("HTTP/1.1 404"))

        let actorScrape = try LoopbackHTTP.get(port: actorEndpoint.port, path: "/metrics").body
        #expect((LoopbackHTTP.sample(actorScrape, #"rlif_actor_groups_acked_total{actor="obs-actor"}"#) ?? 0) >= 1, "\(actorScrape)")
        #expect((LoopbackHTTP.sample(actorScrape, #"rlif_actor_weight_version{actor="obs-actor"}"#) ?? 0) >= 1)
        #expect((LoopbackHTTP.sample(actorScrape, #"rlif_actor_weight_bytes_received_total{actor="obs-actor"}"#) ?? 0) > 0)
        #expect((LoopbackHTTP.sample(actorScrape, #"rlif_actor_tokens_per_second{actor="obs-actor"}"#) ?? 0) > 0)

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

/// An actor on its own thread, with a hook to configure its client before it runs (e.g. `onSummary`).
final class ActorRun: @unchecked Sendable {  // `error` written by the thread before `done` is signalled
    var error: Error?
    let done = DispatchSemaphore(value: 0)
    init(_ endpoints: Endpoints, id: String, configure: @escaping @Sendable (ActorClient) -> Void) {
        let t = Thread { [self] in
            do {
                let client = try ActorClient(options: ActorOptions(learner: endpoints, actorId: id),
                                             engine: TransformerRolloutEngine(batchSequences: 8),
                                             logger: Logger(label: "test.\(id)"))
                configure(client)
                _ = try client.run()
            } catch { self.error = error }
            done.signal()
        }
        t.stackSize = 8 << 20
        t.start()
    }
    func wait(seconds: Double = 60) -> Bool { done.wait(timeout: .now() + seconds) == .success }
}
