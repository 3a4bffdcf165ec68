import CRlifProto
import Testing
@testable import Wire

/// Round trips of every message type and the validation errors of `WireCodec.decode`.
@Suite struct WireCodecTests {
    @Test func everyMessageTypeRoundTrips() throws {
        #expect(Samples.bodies.count == 14, "one sample per oneof case")
        for e in Samples.envelopes {
            let bytes = WireCodec.encode(e)
            #expect(bytes.count == WireCodec.encodedSize(e))
            let back = try WireCodec.decode(bytes)
            #expect(back == e, "\(e.body.fieldName) did not round-trip")
            #expect(back.body.fieldName == e.body.fieldName)
        }
    }

    @Test func defaultValuesRoundTrip() throws {
        // All-zero / empty fields (proto3 omits them on the wire) must come back identical, not missing.
        let empties: [Message] = [
            .hello(Hello(actorId: "")), .heartbeat(Heartbeat()), .workRequest(WorkRequest(credits: 0)),
            .noWork(NoWork()), .goodbye(Goodbye()), .taskFailure(TaskFailure(taskId: 0, error: "")), .ack(Ack(taskId: 0, status: .unspecified)),
            .rolloutGroup(RolloutGroup(taskId: 0, actorId: "", weightVersion: 0, completions: [])),
            .rolloutGroup(RolloutGroup(taskId: 1, actorId: "a", weightVersion: 0, completions: [
                Completion(tokens: [], logprobs: [], selfCertainty: [], reward: 0, finishReason: .unspecified)])),
        ]
        for body in empties {
            let e = Envelope(sender: "", body: body)
            #expect(try WireCodec.decode(WireCodec.encode(e)) == e, "\(body.fieldName)")
        }
    }

    /// Adapter-only weight versions: the frozen base round-trips as a request and a chunk kind; a peer setting both
    /// `adapter` and `frozen_base`, a frozen-base request with a version, or an adapter spec that cannot be built is
    /// refused with the field's path.
    @Test func adapterAndFrozenBaseFieldsRoundTripAndAreValidated() throws {
        var chunk = Samples.snapshotChunk()
        chunk.kind = .frozenBase
        chunk.version = 0
        for body: Message in [.snapshotChunk(chunk), .snapshotRequest(SnapshotRequest(dtype: .bf16, kind: .frozenBase)),
                              .welcome(Welcome(runId: "r", lora: nil))] {
            let e = Envelope(sender: "x", body: body)
            #expect(try WireCodec.decode(WireCodec.encode(e)) == e, "\(body.fieldName)")
        }
        func refused(_ body: Message, patch: (UnsafeMutablePointer<Rlif__V1__Envelope>) -> Void) -> WireError? {
            let bytes = WireCodec.withCEnvelope(Envelope(sender: "x", body: body)) { env in
                patch(env)
                return [UInt8](unsafeUninitializedCapacity: rlif__v1__envelope__get_packed_size(env)) { b, n in
                    n = rlif__v1__envelope__pack(env, b.baseAddress!)
                }
            }
            do { _ = try WireCodec.decode(bytes); return nil } catch { return error }
        }
        #expect(refused(.snapshotChunk(chunk)) { $0.pointee.snapshot_chunk.pointee.adapter = 1 }?.field == "snapshot_chunk.frozen_base")
        #expect(refused(.snapshotRequest(SnapshotRequest(kind: .adapter))) { $0.pointee.snapshot_request.pointee.frozen_base = 1 }?.field
                == "snapshot_request.frozen_base")
        #expect(refused(.snapshotRequest(SnapshotRequest(version: 3, kind: .frozenBase))) { _ in }?.field == "snapshot_request.version")
        let spec = AdapterSpec(rank: 8, alpha: 16, targetModules: ["q_proj"])
        #expect(refused(.welcome(Welcome(runId: "r", lora: spec))) { $0.pointee.welcome.pointee.lora.pointee.rank = 0 }?.field == "welcome.lora.rank")
        #expect(refused(.welcome(Welcome(runId: "r", lora: spec))) { $0.pointee.welcome.pointee.lora.pointee.alpha = .nan }?.field == "welcome.lora.alpha")
        #expect(refused(.welcome(Welcome(runId: "r", lora: spec))) { $0.pointee.welcome.pointee.lora.pointee.n_target_modules = 0 }?.field
                == "welcome.lora.target_modules")
    }

    @Test func encodeIntoCallerBuffers() throws {
        let e = Envelope(sender: "learner", body: .rolloutGroup(Samples.rolloutGroup(groupSize: 2, length: 50)))
        let reference = WireCodec.encode(e)
        var reused = [UInt8](repeating: 0xAA, count: 3)
        WireCodec.encode(e, into: &reused)
        #expect(reused == reference)
        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: reference.count + 10, alignment: 16)
        defer { raw.deallocate() }
        let n = try WireCodec.encode(e, into: raw)
        #expect(Array(raw[0..<n]) == reference)
        let small = UnsafeMutableRawBufferPointer.allocate(byteCount: 10, alignment: 16)
        defer { small.deallocate() }
        #expect(throws: WireError.bufferTooSmall(needed: reference.count, available: 10)) {
            try WireCodec.encode(e, into: small)
        }
        // Decoding straight from raw memory (e.g. a received zmq frame) gives the same envelope.
        #expect(try WireCodec.decode(UnsafeRawBufferPointer(rebasing: raw[0..<n])) == e)
    }

    @Test func wrongProtocolVersionIsRejected() throws {
        var e = Samples.envelopes[0]
        e.protocolVersion = 2
        let err = #expect(throws: WireError.self) { try WireCodec.decode(WireCodec.encode(e)) }
        #expect(err == .protocolVersion(got: 2, expected: 1))
        #expect(err?.description.contains("envelope.protocol_version") == true)
        #expect(err?.code == .protocolVersion)
        e.protocolVersion = 0  // absent on the wire
        #expect(throws: WireError.protocolVersion(got: 0, expected: 1)) { try WireCodec.decode(WireCodec.encode(e)) }
    }

    @Test func nanInLogprobsNamesTheElement() throws {
        var g = Samples.rolloutGroup(groupSize: 5, length: 40)
        g.completions[3].logprobs[17] = .nan
        let err = #expect(throws: WireError.self) {
            try WireCodec.decode(WireCodec.encode(Envelope(sender: "a", body: .rolloutGroup(g))))
        }
        #expect(err == .nonFinite(field: "rollout_group.completions[3].logprobs[17]"))
        #expect(err?.description == "rollout_group.completions[3].logprobs[17]: is not finite (NaN or infinity)")

        var g2 = Samples.rolloutGroup(groupSize: 2, length: 10)
        g2.completions[1].selfCertainty[0] = -.infinity
        #expect(throws: WireError.nonFinite(field: "rollout_group.completions[1].self_certainty[0]")) {
            try WireCodec.decode(WireCodec.encode(Envelope(sender: "a", body: .rolloutGroup(g2))))
        }
        var g3 = Samples.rolloutGroup(groupSize: 2, length: 10)
        g3.completions[0].reward = .infinity
        #expect(throws: WireError.nonFinite(field: "rollout_group.completions[0].reward")) {
            try WireCodec.decode(WireCodec.encode(Envelope(sender: "a", body: .rolloutGroup(g3))))
        }
    }

    @Test func mismatchedLengthsAreRejected() throws {
        var g = Samples.rolloutGroup(groupSize: 4, length: 30)  // completion i has 30 - i tokens
        g.completions[2].logprobs.removeLast()
        let err = #expect(throws: WireError.self) {
            try WireCodec.decode(WireCodec.encode(Envelope(sender: "a", body: .rolloutGroup(g))))
        }
        #expect(err == .lengthMismatch(field: "rollout_group.completions[2].logprobs", count: 27,
                                       expectedField: "rollout_group.completions[2].tokens", expected: 28))
        var g2 = Samples.rolloutGroup(groupSize: 1, length: 30)
        g2.completions[0].selfCertainty.append(1)
        #expect(throws: WireError.lengthMismatch(field: "rollout_group.completions[0].self_certainty", count: 31,
                                                 expectedField: "rollout_group.completions[0].tokens", expected: 30)) {
            try WireCodec.decode(WireCodec.encode(Envelope(sender: "a", body: .rolloutGroup(g2))))
        }
    }

    @Test func oversizedIsRejectedBeforeParsing() throws {
        let e = Envelope(sender: "a", body: .rolloutGroup(Samples.rolloutGroup(groupSize: 8, length: 256)))
        let bytes = WireCodec.encode(e)
        #expect(throws: WireError.tooLarge(bytes: bytes.count, limit: 1000)) { try WireCodec.decode(bytes, maxBytes: 1000) }
        #expect(try WireCodec.decode(bytes, maxBytes: bytes.count) == e)
    }

    @Test func invalidSamplingAndMissingPartsAreRejected() throws {
        func item(_ f: (inout WorkItem) -> Void) -> [UInt8] {
            var w = WorkItem(taskId: 1, promptTokens: [1, 2], groupSize: 4)
            f(&w)
            return WireCodec.encode(Envelope(sender: "learner", body: .workItem(w)))
        }
        #expect(throws: WireError.nonFinite(field: "work_item.sampling.temperature")) {
            try WireCodec.decode(item { $0.sampling.temperature = .nan })
        }
        #expect(throws: WireError.self) { try WireCodec.decode(item { $0.sampling.temperature = -1 }) }
        #expect(throws: WireError.self) { try WireCodec.decode(item { $0.sampling.topP = 0 }) }
        #expect(throws: WireError.invalidValue(field: "work_item.group_size", reason: "is 0, must be >= 1")) {
            try WireCodec.decode(item { $0.groupSize = 0 })
        }
        #expect(throws: WireError.invalidValue(field: "work_item.sampling.stop_sequences[1].token_ids",
                                               reason: "has 0 tokens, must have 1…64")) {
            try WireCodec.decode(item { $0.sampling.stopSequences = [[5], []] })
        }
        #expect(throws: WireError.self) {
            try WireCodec.decode(item { $0.sampling.stopSequences = [[UInt32]](repeating: [1], count: 33) })
        }
        #expect(throws: WireError.self) {
            try WireCodec.decode(item { $0.sampling.stopSequences = [[UInt32](repeating: 1, count: 65)] })
        }
        // Envelope with version only, no body: field 1 = 1.
        #expect(throws: WireError.missingBody) { try WireCodec.decode([0x08, 0x01]) }
        // A body of an unknown field number (99, length 0) is not a known body.
        #expect(throws: WireError.missingBody) { try WireCodec.decode([0x08, 0x01, 0x9A, 0x06, 0x00]) }
        // work_item present (field 14, empty) but its required sampling is absent.
        #expect(throws: WireError.missingField("work_item.sampling")) { try WireCodec.decode([0x08, 0x01, 0x72, 0x00]) }
        // rollout_group (field 16, empty) without timings.
        #expect(throws: WireError.missingField("rollout_group.timings")) { try WireCodec.decode([0x08, 0x01, 0x82, 0x01, 0x00]) }
        // ack (field 17) with status = 9 (unknown enum value).
        #expect(throws: WireError.invalidValue(field: "ack.status", reason: "unknown enum value 9")) {
            try WireCodec.decode([0x08, 0x01, 0x8A, 0x01, 0x02, 0x10, 0x09])
        }
        #expect(throws: WireError.malformed(bytes: 3)) { try WireCodec.decode([0x0F, 0xFF, 0xFF]) }
    }

    @Test func errorMessageFromWireError() {
        let m = ErrorMessage(WireError.nonFinite(field: "rollout_group.completions[0].reward"))
        #expect(m.code == .malformed)
        #expect(m.field == "rollout_group.completions[0].reward")
        #expect(m.message.contains("not finite"))
    }
}
