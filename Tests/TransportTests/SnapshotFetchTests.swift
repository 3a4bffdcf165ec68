import TestSupport
import Testing
import Transport
import Wire

/// The weights flow end to end on real sockets (Clone pattern): an actor DEALER asks a learner ROUTER for a
/// snapshot under credits; chunks come as [header envelope][zero-copy data] frames; the assembler yields the
/// exact parameters. Both sides run on this thread (ROUTER and DEALER queue asynchronously).
@Suite struct SnapshotFetchTests {
    @Test func fetchUnderCreditsOverRouterDealer() throws {
        var rng = SeededGenerator(seed: 42)
        let params = (0..<300_000).map { _ in Float.random(in: -1...1, using: &rng) }
        let manifest = [TensorEntry(name: "a", shape: [1000, 200], offsetElements: 0),
                        TensorEntry(name: "b", shape: [100_000], offsetElements: 200_000)]
        let snapshot = try WeightSnapshot(version: 3, parameters: params, manifest: manifest, chunkBytes: 64 << 10)
        #expect(snapshot.nChunks == 19)

        let context = try ZMQContext()
        let learner = try ZMQSocket(context, .router)
        try learner.setOption(.routerMandatory, 1)
        try learner.bind("tcp://127.0.0.1:*")
        let actor = try ZMQSocket(context, .dealer)
        try actor.setRoutingId("actor-7")
        try actor.setMaxMessageSize(Int64(WireCodec.defaultMaxBytes))
        try actor.connect(try learner.lastEndpoint())

        let credits: UInt32 = 4
        var assembler = SnapshotAssembler(version: snapshot.notice.version)
        var next: UInt32 = 0
        var maxInFlight = 0
        while !assembler.isComplete {
            // Actor: ask for the next `credits` chunks.
            let request = Envelope(sender: "actor-7", body: .snapshotRequest(SnapshotRequest(version: 3, firstChunk: next, credits: credits)))
            try actor.send(WireCodec.encode(request))
            // Learner: answer with at most `credits` chunks, header + zero-copy data frames.
            let frames = try #require(try learner.receiveFrames(timeoutMs: 5000))
            #expect(frames.count == 2 && frames[0] == Array("actor-7".utf8))
            guard case .snapshotRequest(let r) = try WireCodec.decode(frames[1]).body else {
                Issue.record("expected a snapshot request"); return
            }
            let first = Int(r.firstChunk), last = min(snapshot.nChunks, first + Int(r.credits))
            for i in first..<last {
                try learner.send(frames[0], more: true)
                try learner.send(WireCodec.encode(Envelope(sender: "learner", body: .snapshotChunk(snapshot.chunkHeader(i)))), more: true)
                try learner.sendZeroCopy(snapshot.chunkData(i))
            }
            // Actor: receive exactly what was granted.
            var got = 0
            while got < last - first {
                let header = try #require(try actor.withReceivedFrame(timeoutMs: 5000) { raw, more in
                    #expect(more, "data frame must follow the header")
                    return try WireCodec.decode(raw)
                })
                guard case .snapshotChunk(let c) = header.body, c.dataInNextFrame else { Issue.record("not a chunk header"); return }
                _ = try #require(try actor.withReceivedFrame(timeoutMs: 5000) { data, more in
                    #expect(!more)
                    return try assembler.accept(c, data: data)
                })
                got += 1
            }
            maxInFlight = max(maxInFlight, got)
            next = UInt32(last)
        }
        #expect(maxInFlight == Int(credits), "never more chunks in flight than credits")
        let out = try assembler.finish()
        #expect(out.manifest == manifest)
        #expect(out.parameters == params)
    }
}
