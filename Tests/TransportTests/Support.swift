import TestSupport
import Foundation
import Transport


func randomBytes(_ n: Int, seed: UInt64) -> [UInt8] {
    var rng = SeededGenerator(seed: seed)
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
