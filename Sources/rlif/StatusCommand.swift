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
        discussion: """
            Example: rlif status --learner tcp://learner-host:5555
            A learner with CURVE answers only listed keys: pass a key pair it authorizes (an actor's) and its public key,
            e.g. rlif status --learner tcp://learner-host:5555 --curve-secret actor.secret --learner-key learner.pub
            """)

    @Option(help: "The learner's base address, as given to actors (tcp://HOST:PORT or ipc://PATH).") var learner: String
    @Option(help: "Seconds to wait for the reply.") var timeout: Double = 5
    @Flag(help: "The status as one JSON object (snake_case keys) instead of a table.") var json = false
    @Option(help: "A CURVE secret key file whose public key the learner authorizes (e.g. an actor's); with --learner-key.")
    var curveSecret: String?
    @Option(help: "The learner's public key file (its .pub), needed with --curve-secret.") var learnerKey: String?

    func run() throws {
        let curve = try CurveOptions.actor(secret: curveSecret, learnerKey: learnerKey)
        let s = try StatusClient.fetch(try Endpoints(base: learner), timeoutMs: Int(timeout * 1000)) { socket in
            if let c = curve { try socket.setCurveClient(serverKey: c.learnerKey, keyPair: c.keyPair) }
        }
        if json {
            let enc = MetricsLog.encoder()
            enc.outputFormatting.insert(.prettyPrinted)
            print(String(decoding: try enc.encode(s), as: UTF8.self))
        } else {
            print(s.table)
        }
    }
}
