import ArgumentParser
import Foundation
import Learner
import Telemetry
import Training
import Transport

/// `rlif status --learner ENDPOINT`: how a running learner is doing (a `StatusRequest` on its work socket).
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Ask a running learner for its status: step, ETA, counters and one row per actor.",
        discussion: "Example: rlif status --learner tcp://learner-host:5555")

    @Option(help: "The learner's base address, as given to actors (tcp://HOST:PORT or ipc://PATH).") var learner: String
    @Option(help: "Seconds to wait for the reply.") var timeout: Double = 5
    @Flag(help: "The status as one JSON object (snake_case keys) instead of a table.") var json = false

    func run() throws {
        let s = try StatusClient.fetch(try Endpoints(base: learner), timeoutMs: Int(timeout * 1000))
        if json {
            let enc = MetricsLog.encoder()
            enc.outputFormatting.insert(.prettyPrinted)
            print(String(decoding: try enc.encode(s), as: UTF8.self))
        } else {
            print(s.table)
        }
    }
}
