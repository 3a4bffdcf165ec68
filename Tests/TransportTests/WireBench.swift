import TestSupport
import Foundation
import Testing
import Transport
import Wire

/// Throughput of the real codec and transport. Prints numbers, asserts only correctness. Small sizes by default
/// (so the suite stays fast); `RLIF_BENCH=1` (scripts/bench/wire_bench.sh, release) uses the full sizes.
@Suite(.serialized) struct WireBench {
    static let full = ProcessInfo.processInfo.environment["RLIF_BENCH"] == "1"

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    static func rolloutGroup(groupSize: Int, length: Int) -> RolloutGroup {
        var rng = SeededGenerator(seed: 3)
        let completions = (0..<groupSize).map { _ in
            Completion(tokens: (0..<length).map { _ in UInt32.random(in: 0..<151_936, using: &rng) },
                       logprobs: (0..<length).map { _ in -Float.random(in: 0..<10, using: &rng) },
                       selfCertainty: (0..<length).map { _ in Float.random(in: 0..<8, using: &rng) },
                       reward: 3.5, finishReason: .length)
        }
        return RolloutGroup(taskId: 1, actorId: "actor-1", weightVersion: 4, promptId: "p",
                            completions: completions, timings: Timings(prefillMs: 1, decodeMs: 2, generatedTokens: 8192))
    }

    @Test func rolloutGroupEncodeDecodeRate() throws {
        let e = Envelope(sender: "actor-1", body: .rolloutGroup(Self.rolloutGroup(groupSize: 8, length: 1024)))
        let iterations = Self.full ? 2000 : 20
        var buffer: [UInt8] = []
        WireCodec.encode(e, into: &buffer)
        #expect(try WireCodec.decode(buffer) == e)
        let clock = ContinuousClock()
        var encodeTime = Duration.zero, decodeTime = Duration.zero
        var checksum = 0
        for _ in 0..<iterations {
            let t0 = clock.now
            WireCodec.encode(e, into: &buffer)
            let t1 = clock.now
            let d = try WireCodec.decode(buffer)
            let t2 = clock.now
            encodeTime += t1 - t0
            decodeTime += t2 - t1
            if case .rolloutGroup(let g) = d.body { checksum &+= g.completions.count }
        }
        #expect(checksum == 8 * iterations)
        let total = Self.seconds(encodeTime + decodeTime)
        print(String(format: "WireBench rollout group 8x1024 (%d bytes): %.0f encode+decode/s (encode %.1f us, decode %.1f us)",
                     buffer.count, Double(iterations) / total,
                     Self.seconds(encodeTime) / Double(iterations) * 1e6, Self.seconds(decodeTime) / Double(iterations) * 1e6))
    }

    func weightsOverTCP(dtype: DType, inline: Bool) throws {
        let megabytes = Self.full ? 100 : 8
        let count = megabytes << 18  // floats
        var rng = SeededGenerator(seed: 9)
        let params = (0..<count).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) & 0x3FFF_FFFF) }
        let manifest = [TensorEntry(name: "flat", shape: [UInt64(count)], offsetElements: 0)]
        let clock = ContinuousClock()
        let t0 = clock.now
        let snapshot = try WeightSnapshot(version: 1, parameters: params, manifest: manifest, dtype: dtype, chunkBytes: 4 << 20)
        let buildTime = clock.now - t0

        let context = try ZMQContext()
        let pull = try ZMQSocket(context, .pull)
        try pull.setMaxMessageSize(Int64(WireCodec.defaultMaxBytes))
        try pull.bind("tcp://127.0.0.1:*")
        let endpoint = try pull.lastEndpoint()
        let sendError = Atomic<String?>(nil)
        let start = clock.now
        let sender = Thread {
            do {
                let push = try ZMQSocket(context, .push)
                try push.connect(endpoint)
                for i in 0..<snapshot.nChunks {
                    if inline {
                        let bytes = WireCodec.encode(Envelope(sender: "learner", body: .snapshotChunk(snapshot.chunk(i))))
                        try push.sendZeroCopy(bytes)
                    } else {
                        // Header envelope, then the chunk's bytes straight from the snapshot (zero-copy).
                        try push.send(WireCodec.encode(Envelope(sender: "learner", body: .snapshotChunk(snapshot.chunkHeader(i)))),
                                      more: true)
                        try push.sendZeroCopy(snapshot.chunkData(i))
                    }
                }
                try push.setOption(.linger, -1)  // flush before close
            } catch { sendError.set("\(error)") }
        }
        sender.start()
        var assembler = SnapshotAssembler(version: 1)
        var complete = false
        while !complete {
            let done = try pull.withReceivedFrame(timeoutMs: 20_000) { raw, more -> Bool in
                guard case .snapshotChunk(let c) = try WireCodec.decode(raw).body else { return false }
                guard c.dataInNextFrame else { return try assembler.accept(c) }
                #expect(more)
                return try pull.withReceivedFrame(timeoutMs: 20_000) { data, _ in try assembler.accept(c, data: data) } ?? false
            }
            guard let done else { Issue.record("timed out after \(assembler.receivedChunks) chunks"); break }
            complete = done
        }
        let assembled = try assembler.finish()
        let elapsed = clock.now - start
        #expect(sendError.get() == nil, "\(sendError.get() ?? "")")
        if dtype == .f32 {
            #expect(assembled.parameters == params)
        } else {
            #expect(assembled.parameters.count == params.count)
        }
        let wireBytes = Double(snapshot.totalBytes)
        print(String(format: "WireBench %d MB of weights as %@ in %d x 4 MB chunks (%@) over tcp loopback: %.2f GB/s of wire bytes, %.2f GB/s of F32 parameters (%.0f ms; snapshot build %.0f ms)",
                     megabytes, dtype == .f32 ? "F32" : "BF16", snapshot.nChunks,
                     inline ? "data inside the envelope" : "data as a zero-copy 2nd frame", wireBytes / Self.seconds(elapsed) / 1e9,
                     Double(count * 4) / Self.seconds(elapsed) / 1e9, Self.seconds(elapsed) * 1e3, Self.seconds(buildTime) * 1e3))
    }

    /// Where the time of one 4 MB chunk goes (single thread, no sockets).
    @Test func chunkStageCosts() throws {
        let count = 1 << 20
        let params = (0..<count).map { Float($0) * 1e-3 }
        let snapshot = try WeightSnapshot(version: 1, parameters: params,
                                          manifest: [TensorEntry(name: "flat", shape: [UInt64(count)], offsetElements: 0)],
                                          chunkBytes: 4 << 20)
        let clock = ContinuousClock()
        let reps = Self.full ? 20 : 2
        var enc = Duration.zero, dec = Duration.zero, acc = Duration.zero, crc = Duration.zero
        for _ in 0..<reps {
            let t0 = clock.now
            let bytes = WireCodec.encode(Envelope(sender: "learner", body: .snapshotChunk(snapshot.chunk(0))))
            let t1 = clock.now
            let e = try WireCodec.decode(bytes)
            let t2 = clock.now
            guard case .snapshotChunk(let c) = e.body else { Issue.record("not a chunk"); return }
            var a = SnapshotAssembler()
            #expect(try a.accept(c))
            let t3 = clock.now
            #expect(CRC32.checksum(c.data) == c.crc32)
            let t4 = clock.now
            enc += t1 - t0; dec += t2 - t1; acc += t3 - t2; crc += t4 - t3
        }
        func ms(_ d: Duration) -> Double { Self.seconds(d) / Double(reps) * 1e3 }
        print(String(format: "WireBench one 4 MB chunk: encode %.2f ms, decode %.2f ms, assembler accept %.2f ms (of which CRC-32 %.2f ms)",
                     ms(enc), ms(dec), ms(acc), ms(crc)))
    }

    /// Baseline for the numbers above under the same load: the same bytes as raw 4 MB frames, no codec, no CRC.
    @Test func rawFramesOverTCPBaseline() throws {
        let megabytes = Self.full ? 100 : 8
        let frame = randomBytes(4 << 20, seed: 5)
        let n = megabytes / 4
        let context = try ZMQContext()
        let pull = try ZMQSocket(context, .pull)
        try pull.bind("tcp://127.0.0.1:*")
        let endpoint = try pull.lastEndpoint()
        let clock = ContinuousClock()
        let start = clock.now
        let sender = Thread {
            guard let push = try? ZMQSocket(context, .push), (try? push.connect(endpoint)) != nil else { return }
            for _ in 0..<n { _ = try? push.sendZeroCopy(frame) }
            try? push.setOption(.linger, -1)
        }
        sender.start()
        var into = [UInt8](repeating: 0, count: n * frame.count)  // reused, preallocated receive buffer
        for i in 0..<n {
            let ok = try pull.withReceivedFrame(timeoutMs: 20_000) { raw, _ in
                into.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: i * frame.count).copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
                return raw.count == frame.count
            }
            #expect(ok == true)
        }
        let elapsed = Self.seconds(clock.now - start)
        #expect(into[(n - 1) * frame.count..<n * frame.count].elementsEqual(frame))
        print(String(format: "WireBench baseline: %d MB as raw 4 MB zero-copy frames over tcp loopback, copied into a preallocated buffer: %.2f GB/s",
                     megabytes, Double(n * frame.count) / elapsed / 1e9))
    }

    @Test func weightsOverTCPF32Inline() throws { try weightsOverTCP(dtype: .f32, inline: true) }
    @Test func weightsOverTCPF32SeparateFrame() throws { try weightsOverTCP(dtype: .f32, inline: false) }
    @Test func weightsOverTCPBF16SeparateFrame() throws { try weightsOverTCP(dtype: .bf16, inline: false) }
}
