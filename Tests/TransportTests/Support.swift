import Foundation
import Transport

/// Deterministic random bytes (SplitMix64).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func randomBytes(_ n: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    var out = [UInt8](repeating: 0, count: n)
    out.withUnsafeMutableBytes { raw in
        let words = raw.bindMemory(to: UInt64.self)
        for i in words.indices { words[i] = rng.next() }
        for i in (words.count * 8)..<n { raw[i] = UInt8(truncatingIfNeeded: rng.next()) }
    }
    return out
}

/// Loopback-only endpoints: an ephemeral tcp port on 127.0.0.1, or a unique ipc path under /tmp.
enum Loopback {
    static let tcp = "tcp://127.0.0.1:*"
    static func ipc(_ name: String) -> String {
        "ipc:///tmp/rlif-test-\(ProcessInfo.processInfo.processIdentifier)-\(name)-\(UUID().uuidString.prefix(8)).sock"
    }
    static func removeIPC(_ endpoint: String) {
        if endpoint.hasPrefix("ipc://") { try? FileManager.default.removeItem(atPath: String(endpoint.dropFirst(6))) }
    }
}

/// Binds `socket` to `endpoint` and returns the concrete endpoint to connect to (real port for tcp `*`).
func bindLoopback(_ socket: ZMQSocket, _ endpoint: String) throws -> String {
    try socket.bind(endpoint)
    return try socket.lastEndpoint()
}
