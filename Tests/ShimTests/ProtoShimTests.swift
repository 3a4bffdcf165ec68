import CRlifProto
import Testing

/// protobuf-c round trip of a message generated from Protos/, and garbage that must fail cleanly.
@Suite struct ProtoShimTests {
    @Test func workItemRoundTrip() throws {
        var tokens: [UInt32] = [1, 403, 407, 261, 378]
        var sampling = Rlif__V1__SamplingParams()
        rlif__v1__sampling_params__init(&sampling)
        sampling.temperature = 0.9
        sampling.top_p = 1
        sampling.max_new_tokens = 64
        var item = Rlif__V1__WorkItem()
        rlif__v1__work_item__init(&item)
        item.task_id = 42
        item.group_size = 8
        item.seed = 0xDEADBEEF
        let packed: [UInt8] = tokens.withUnsafeMutableBufferPointer { tp in
            withUnsafeMutablePointer(to: &sampling) { sp in
                item.n_prompt_tokens = tp.count
                item.prompt_tokens = tp.baseAddress
                item.sampling = sp
                var env = Rlif__V1__Envelope()
                rlif__v1__envelope__init(&env)
                env.protocol_version = UInt32(RLIF__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT.rawValue)
                return withUnsafeMutablePointer(to: &item) { ip in
                    env.body_case = RLIF__V1__ENVELOPE__BODY_WORK_ITEM
                    env.work_item = ip
                    let size = rlif__v1__envelope__get_packed_size(&env)
                    var out = [UInt8](repeating: 0, count: size)
                    let written = rlif__v1__envelope__pack(&env, &out)
                    #expect(written == size)
                    return out
                }
            }
        }
        let decoded = try #require(packed.withUnsafeBufferPointer {
            rlif__v1__envelope__unpack(nil, $0.count, $0.baseAddress)
        })
        defer { rlif__v1__envelope__free_unpacked(decoded, nil) }
        #expect(decoded.pointee.protocol_version == 1)
        #expect(decoded.pointee.body_case == RLIF__V1__ENVELOPE__BODY_WORK_ITEM)
        let w = try #require(decoded.pointee.work_item)
        #expect(w.pointee.task_id == 42)
        #expect(w.pointee.group_size == 8)
        #expect(w.pointee.seed == 0xDEADBEEF)
        #expect(Array(UnsafeBufferPointer(start: w.pointee.prompt_tokens, count: w.pointee.n_prompt_tokens)) == tokens)
        #expect(w.pointee.sampling.pointee.temperature == Float(0.9))
        #expect(w.pointee.sampling.pointee.max_new_tokens == 64)
    }

    @Test func garbageFailsCleanly() {
        // A field header announcing a length-delimited field 10 (hello) of 100 bytes, with only 3 following.
        let truncated: [UInt8] = [0x52, 100, 1, 2, 3]
        // Wire type 7 does not exist.
        let badWireType: [UInt8] = [0x0F, 0xFF, 0xFF]
        // A varint that never ends.
        let endlessVarint: [UInt8] = [0x08] + [UInt8](repeating: 0xFF, count: 12)
        for bytes in [truncated, badWireType, endlessVarint] {
            let p = bytes.withUnsafeBufferPointer { rlif__v1__envelope__unpack(nil, $0.count, $0.baseAddress) }
            #expect(p == nil, "decoded garbage \(bytes)")
            if let p { rlif__v1__envelope__free_unpacked(p, nil) }
        }
    }
}
