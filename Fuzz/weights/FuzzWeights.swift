// libFuzzer target: the actor's weights path, as ActorClient.pump drives it, on frames from the learner.
// Each frame is decoded by WireCodec.decode; a snapshot_chunk with data_in_next_frame takes the following frame as
// its data (the 2-frame message); notices, heartbeats and welcomes move WeightSync as the actor does; a learner
// incarnation change goes through IncarnationTracker. Chunks reach the real SnapshotAssembler inside WeightSync.
//
// Input: frames, each a little-endian UInt16 length followed by that many bytes (a short tail is one last frame).
import Actor
import Wire

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWeights(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    var frames: [UnsafeRawBufferPointer] = []
    var pos = 0
    while pos < size {
        guard pos + 2 <= size else { frames.append(UnsafeRawBufferPointer(rebasing: input[pos...])); break }
        let n = Int(input[pos]) | Int(input[pos + 1]) << 8
        pos += 2
        let end = min(size, pos + n)
        frames.append(UnsafeRawBufferPointer(rebasing: input[pos..<end]))
        pos = end
    }

    var sync = WeightSync(config: .init(chunkCredits: 4, stallMs: 5))
    var incarnations = IncarnationTracker()
    var now: UInt64 = 0
    var i = 0
    func handle(_ outcome: WeightSync.ChunkOutcome) {
        if case .assembled(let snap, _, _) = outcome {
            // What the installer relies on: every manifest tensor lies inside the assembled parameters.
            for t in snap.manifest {
                let (end, o) = t.offsetElements.addingReportingOverflow(t.elementCount ?? .max)
                precondition(!o && end <= UInt64(snap.parameters.count), "assembled snapshot: tensor \(t.name) is outside the parameters")
            }
            _ = sync.installed(version: snap.version, kind: snap.kind, now: now)
        }
    }
    while i < frames.count {
        now += 1
        _ = sync.tick(now: now)
        let frame = frames[i]
        i += 1
        guard let env = try? WireCodec.decode(frame) else { continue }
        switch incarnations.observe(env.learnerIncarnation) {
        case .late: continue
        case .restarted: sync.learnerRestarted()
        case .current: break
        }
        switch env.body {
        case .welcome(let w):
            _ = sync.configure(mode: w.lora == nil ? .full : .adapters(baseDType: .unspecified), now: now)  // as ActorClient does
            _ = sync.note(version: w.currentWeightVersion, now: now)
        case .heartbeat(let hb): _ = sync.note(version: hb.weightVersion, now: now)
        case .weightNotice(let n): _ = sync.note(version: n.version, now: now)
        case .error(let e) where e.code == .unknownVersion: _ = sync.versionNotServed(now: now)
        case .snapshotChunk(let c) where c.dataInNextFrame:
            guard i < frames.count else { break }
            let payload = frames[i]
            i += 1
            handle(sync.accept(chunk: c, data: payload, now: now))
        case .snapshotChunk(let c):
            handle(sync.accept(chunk: c, data: nil, now: now))
        default: break
        }
    }
    return 0
}
