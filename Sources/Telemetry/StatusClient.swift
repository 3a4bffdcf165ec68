import Foundation
import Learner
import Transport
import Wire

/// `rlif status`: asks a learner for its status over its work socket (a DEALER, like an actor's, so the same
/// CURVE keys and network path apply) and decodes the reply.
public enum StatusClient {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Sends one `StatusRequest` to `endpoints.work` and waits up to `timeoutMs` for the `StatusReply`.
    public static func fetch(_ endpoints: Endpoints, timeoutMs: Int = 5000,
                             configure: ((ZMQSocket) throws -> Void)? = nil) throws -> LearnerStatus {
        let ctx = try ZMQContext()
        defer { ctx.shutdown() }
        let s = try ZMQSocket(ctx, .dealer)
        defer { s.close() }
        try s.setOption(.linger, 0)
        try s.setRoutingId("status-\(ProcessInfo.processInfo.hostName)-\(getpid())")
        try configure?(s)
        try s.connect(endpoints.work)
        _ = try s.send(frames: [WireCodec.encode(.stamped(sender: "status", .statusRequest(StatusRequest())))])
        let deadline = Date().addingTimeInterval(Double(timeoutMs) / 1000)
        while Date() < deadline {
            let left = max(1, Int(deadline.timeIntervalSinceNow * 1000))
            guard let frames = try s.receiveFrames(timeoutMs: left), let body = frames.last else { continue }
            let env: Envelope
            do { env = try WireCodec.decode(body) } catch {
                throw Failure(description: "\(endpoints.work): undecodable reply: \(error)")
            }
            switch env.body {
            case .statusReply(let r):
                do { return try JSONDecoder().decode(LearnerStatus.self, from: Data(r.statusJson.utf8)) } catch {
                    throw Failure(description: "\(endpoints.work): status_reply.status_json: \(error)")
                }
            case .error(let e):
                throw Failure(description: "\(endpoints.work): the learner refused the status request: \(e.message)")
            default:
                continue  // a heartbeat or other traffic meant for actors: not an answer
            }
        }
        throw Failure(description: "\(endpoints.work): no status reply within \(timeoutMs) ms (is a learner serving there?)")
    }
}
