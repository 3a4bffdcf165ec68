import Foundation
import TestSupport
import Testing
import Wire

/// The committed seed corpora of the `wire` and `weights` fuzz targets (Tests/Fixtures/fuzz/, see scripts/fuzz) are
/// this build's own encodings: a wire change that leaves them stale fails here. Regenerate with
/// `RLIF_WRITE_FUZZ_SEEDS=1 swift test ... --filter FuzzSeedTests`.
@Suite struct FuzzSeedTests {
    static let write = ProcessInfo.processInfo.environment["RLIF_WRITE_FUZZ_SEEDS"] == "1"

    /// Compares `bytes` with the committed seed `fuzz/<target>/<name>` (or writes it when regenerating).
    static func expectSeed(_ target: String, _ name: String, _ bytes: [UInt8]) throws {
        let url = Fixtures.url("fuzz/\(target)/\(name)")
        if write {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url)
        }
        let committed = try [UInt8](Data(contentsOf: url))
        #expect(committed == bytes, "\(url.path) is not the current encoding (regenerate: RLIF_WRITE_FUZZ_SEEDS=1)")
    }

    /// The `weights` target's input framing: each frame as a little-endian UInt16 length, then its bytes.
    static func frames(_ fs: [[UInt8]]) -> [UInt8] {
        fs.flatMap { f in [UInt8(f.count & 0xFF), UInt8(f.count >> 8)] + f }
    }

    @Test func wireSeedsAreEveryMessageEncodedByWireCodec() throws {
        for e in Samples.envelopes {
            try Self.expectSeed("wire", "\(e.body.fieldName).bin", WireCodec.encode(e))
        }
    }

    /// A complete small fetch as the learner sends it: Welcome (model configured, version announced), then every
    /// chunk, inline (F32) or as header + data frame (BF16), each of which the actor assembles and installs.
    @Test func weightsSeedsAreCompleteFetches() throws {
        let manifest = [TensorEntry(name: "model.embed_tokens.weight", shape: [8, 6], offsetElements: 0),
                        TensorEntry(name: "model.norm.weight", shape: [6], offsetElements: 48)]
        let params = (0..<54).map { Float($0) * 0.25 - 3 }
        for (dtype, separate) in [(DType.f32, false), (DType.bf16, true)] {
            let snap = try WeightSnapshot(version: 3, parameters: params, manifest: manifest, dtype: dtype, chunkBytes: 64)
            func env(_ m: Message) -> [UInt8] {
                WireCodec.encode(Envelope(sender: "learner", body: m, learnerIncarnation: 7))
            }
            var fs = [env(.welcome(Welcome(runId: "fuzz", currentWeightVersion: 3)))]
            for i in 0..<snap.nChunks {
                if separate {
                    fs.append(env(.snapshotChunk(snap.chunkHeader(i))))
                    fs.append(Array(snap.chunkData(i)))
                } else {
                    fs.append(env(.snapshotChunk(snap.chunk(i))))
                }
            }
            #expect(snap.nChunks > 1, "the seed must exercise multi-chunk assembly")
            try Self.expectSeed("weights", "fetch-\(dtype)\(separate ? "-frames" : "").bin", Self.frames(fs))
        }
    }
}
