import Foundation

/// The single top-level message of the rlif wire protocol (`rlif.v1.Envelope`): every ZeroMQ message body
/// is exactly one encoded `Envelope`. Encode with `WireCodec.encode`, decode (and validate) with `WireCodec.decode`.
public struct Envelope: Sendable, Equatable {
    /// Always `Wire.protocolVersion` when built here; `WireCodec.decode` rejects any other value.
    public var protocolVersion: UInt32
    /// Actor id, or "learner".
    public var sender: String
    /// Wall clock of the sender when the message was built (ms since the Unix epoch); informational only.
    public var sentUnixMs: UInt64
    public var body: Message
    /// The learner run the message belongs to: the learner's own incarnation on its messages; on an actor's, the
    /// incarnation it talks to (0 before its first Welcome), for a group or task failure the one that issued the task.
    public var learnerIncarnation: UInt64

    public init(sender: String, sentUnixMs: UInt64 = 0, body: Message, protocolVersion: UInt32 = Wire.protocolVersion,
                learnerIncarnation: UInt64 = 0) {
        self.protocolVersion = protocolVersion
        self.sender = sender
        self.sentUnixMs = sentUnixMs
        self.body = body
        self.learnerIncarnation = learnerIncarnation
    }

    /// An envelope stamped with the current wall clock, as processes send them.
    public static func stamped(sender: String, _ body: Message, incarnation: UInt64 = 0) -> Envelope {
        Envelope(sender: sender, sentUnixMs: UInt64(Date().timeIntervalSince1970 * 1000), body: body,
                 learnerIncarnation: incarnation)
    }
}

/// The body of an `Envelope` (the proto `oneof body`). One case per message of `Protos/rlif/v1/rlif.proto`.
public enum Message: Sendable, Equatable {
    case hello(Hello)
    case welcome(Welcome)
    case heartbeat(Heartbeat)
    case workRequest(WorkRequest)
    case workItem(WorkItem)
    case noWork(NoWork)
    case rolloutGroup(RolloutGroup)
    case ack(Ack)
    case weightNotice(WeightNotice)
    case snapshotRequest(SnapshotRequest)
    case snapshotChunk(SnapshotChunk)
    case error(ErrorMessage)
    case goodbye(Goodbye)
    case taskFailure(TaskFailure)
    case statusRequest(StatusRequest)
    case statusReply(StatusReply)

    /// The proto field name of the case ("rollout_group"), used in error messages and logs.
    public var fieldName: String {
        switch self {
        case .hello: "hello"
        case .welcome: "welcome"
        case .heartbeat: "heartbeat"
        case .workRequest: "work_request"
        case .workItem: "work_item"
        case .noWork: "no_work"
        case .rolloutGroup: "rollout_group"
        case .ack: "ack"
        case .weightNotice: "weight_notice"
        case .snapshotRequest: "snapshot_request"
        case .snapshotChunk: "snapshot_chunk"
        case .error: "error"
        case .goodbye: "goodbye"
        case .taskFailure: "task_failure"
        case .statusRequest: "status_request"
        case .statusReply: "status_reply"
        }
    }
}
