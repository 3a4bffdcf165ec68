import Learner
import Wire

/// What rank 0 tells the other learner ranks, in one broadcast: train this step on these groups, or stop.
/// Groups go as the wire's own RolloutGroup messages (validated protobuf-c), each with the task's bookkeeping.
///
/// Layout (little-endian): u8 kind (1 train, 2 finish); train: u64 step, u32 groups, then per group u64 task id,
/// u64 step, u64 prompt index, u32 prompt tokens, i32 × tokens, u32 envelope bytes, the envelope.
public enum StepCommand: Equatable, Sendable {
    case train(step: Int, groups: [AcceptedGroup])
    case finish

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        switch self {
        case .finish:
            w.u8(2)
        case let .train(step, groups):
            w.u8(1)
            w.u64(UInt64(step))
            w.u32(UInt32(groups.count))
            for g in groups {
                w.u64(g.taskId); w.u64(UInt64(g.step)); w.u64(UInt64(g.promptIndex))
                w.u32(UInt32(g.promptTokens.count))
                for t in g.promptTokens { w.u32(UInt32(bitPattern: t)) }
                let env = WireCodec.encode(.stamped(sender: "learner-rank-0", .rolloutGroup(g.group)))
                w.u32(UInt32(env.count))
                w.bytes(env)
            }
        }
        return w.out
    }

    /// Decodes `encoded()`; a truncated or malformed buffer is an error naming the offset and field.
    public init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes)
        switch try r.u8("kind") {
        case 2:
            self = .finish
        case 1:
            let step = Int(try r.u64("step"))
            let n = Int(try r.u32("group count"))
            var groups: [AcceptedGroup] = []
            groups.reserveCapacity(n)
            for i in 0..<n {
                let task = try r.u64("group \(i) task id")
                let gstep = Int(try r.u64("group \(i) step"))
                let prompt = Int(try r.u64("group \(i) prompt index"))
                let nt = Int(try r.u32("group \(i) prompt length"))
                var tokens: [Int32] = []
                tokens.reserveCapacity(nt)
                for _ in 0..<nt { tokens.append(Int32(bitPattern: try r.u32("group \(i) prompt token"))) }
                let len = Int(try r.u32("group \(i) envelope length"))
                let env: Envelope
                do { env = try WireCodec.decode(try r.bytes(len, "group \(i) envelope")) } catch let e as WireError {
                    throw MPIError("step command: group \(i): \(e)")
                }
                guard case .rolloutGroup(let g) = env.body else {
                    throw MPIError("step command: group \(i) holds a \(env.body.fieldName), not a rollout_group")
                }
                groups.append(AcceptedGroup(taskId: task, step: gstep, promptIndex: prompt, promptTokens: tokens, group: g))
            }
            self = .train(step: step, groups: groups)
        case let k:
            throw MPIError("step command: unknown kind \(k)")
        }
        guard r.atEnd else { throw MPIError("step command: \(r.remaining) trailing bytes") }
    }
}

struct ByteWriter {
    var out: [UInt8] = []
    mutating func u8(_ v: UInt8) { out.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    mutating func bytes(_ b: [UInt8]) { out += b }
}

struct ByteReader {
    let data: [UInt8]
    var at = 0
    init(_ d: [UInt8]) { data = d }
    var atEnd: Bool { at == data.count }
    var remaining: Int { data.count - at }
    mutating func bytes(_ n: Int, _ what: String) throws -> [UInt8] {
        guard n <= data.count - at else {
            throw MPIError("step command: \(what) at offset \(at) needs \(n) bytes, \(data.count - at) left")
        }
        defer { at += n }
        return Array(data[at..<at + n])
    }
    mutating func u8(_ what: String) throws -> UInt8 { try bytes(1, what)[0] }
    mutating func u32(_ what: String) throws -> UInt32 {
        let b = try bytes(4, what)
        return b.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
    }
    mutating func u64(_ what: String) throws -> UInt64 {
        let b = try bytes(8, what)
        return b.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
    }
}
