import TestSupport
import Testing
@testable import Wire

/// Random bytes, truncations and bit flips of valid encodings never crash the decoder: each input either
/// decodes to an envelope that re-encodes and re-decodes to itself, or throws a WireError.
@Suite struct WireFuzzTests {
    /// Decodes `bytes`; on success checks the result is self-consistent (encode/decode is a fixed point).
    static func check(_ bytes: [UInt8]) -> Bool {
        do {
            let e = try WireCodec.decode(bytes)
            let again = try WireCodec.decode(WireCodec.encode(e))
            #expect(again == e, "decoded envelope does not re-encode to itself")
            return true
        } catch {
            #expect(!error.description.isEmpty)
            return false
        }
    }

    @Test func randomBytesNeverCrash() {
        var rng = SeededGenerator(seed: 1)
        var accepted = 0
        for _ in 0..<3000 {
            let n = Int.random(in: 0..<200, using: &rng)
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if Self.check(bytes) { accepted += 1 }
        }
        // Random bytes essentially never carry version 1 and a body.
        #expect(accepted < 30)
    }

    @Test func randomBytesAfterAValidHeaderNeverCrash() {
        // Start with "version 1" and a body tag so the fuzz reaches the nested decoders.
        var rng = SeededGenerator(seed: 2)
        let tags: [[UInt8]] = [[0x52], [0x72], [0x82, 0x01], [0xA2, 0x01], [0x8A, 0x01], [0x62]]
        for _ in 0..<3000 {
            let tag = tags[Int.random(in: 0..<tags.count, using: &rng)]
            let n = Int.random(in: 0..<120, using: &rng)
            let payload = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = Self.check([0x08, 0x01] + tag + [UInt8(n & 0x7F)] + payload)
        }
    }

    @Test func truncationsOfValidEncodingsNeverCrash() {
        for e in Samples.envelopes {
            let bytes = WireCodec.encode(e)
            // Every prefix for small messages, a spread of prefixes for big ones.
            let step = max(1, bytes.count / 300)
            var decodedShorter = 0
            for n in stride(from: 0, to: bytes.count, by: step) {
                if Self.check(Array(bytes[0..<n])) { decodedShorter += 1 }
            }
            #expect(Self.check(bytes), "the full encoding of \(e.body.fieldName) must decode")
            _ = decodedShorter  // a prefix ending on a field boundary may legally decode (to fewer fields)
        }
    }

    @Test func bitFlipsOfValidEncodingsNeverCrash() {
        var rng = SeededGenerator(seed: 3)
        for e in Samples.envelopes {
            let bytes = WireCodec.encode(e)
            for _ in 0..<300 {
                var b = bytes
                let flips = Int.random(in: 1...4, using: &rng)
                for _ in 0..<flips {
                    let i = Int.random(in: 0..<b.count, using: &rng)
                    b[i] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
                }
                _ = Self.check(b)
            }
        }
    }
}
