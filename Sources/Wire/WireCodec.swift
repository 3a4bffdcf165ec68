import CRlifProto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Encodes `Envelope`s to protobuf bytes and decodes + validates bytes from peers. The only place in rlif that
/// touches protobuf-c pointers.
///
/// Encoding builds a temporary protobuf-c tree (strings and small arrays copied into a malloc arena; the bytes of
/// a `SnapshotChunk` referenced in place, never copied) and packs it once into the output. Decoding lets
/// protobuf-c unpack, validates everything a receiver relies on, copies into Swift values and frees the C tree.
public enum WireCodec {
    /// Default receive limit: a 4 MB snapshot chunk plus headroom, and far above a RolloutGroup of 64 x 4096 tokens.
    public static let defaultMaxBytes = 16 << 20

    // MARK: Encoding

    /// The exact number of bytes `encode` produces.
    public static func encodedSize(_ e: Envelope) -> Int {
        withCEnvelope(e) { rlif__v1__envelope__get_packed_size($0) }
    }

    /// Encodes into a fresh array (written once by protobuf-c, never zero-filled first).
    public static func encode(_ e: Envelope) -> [UInt8] {
        withCEnvelope(e) { env in
            let size = rlif__v1__envelope__get_packed_size(env)
            return [UInt8](unsafeUninitializedCapacity: max(size, 1)) { buf, n in
                n = rlif__v1__envelope__pack(env, buf.baseAddress!)
            }
        }
    }

    /// Encodes into `buffer`, replacing its contents and reusing its capacity when large enough.
    public static func encode(_ e: Envelope, into buffer: inout [UInt8]) {
        withCEnvelope(e) { env in
            let size = rlif__v1__envelope__get_packed_size(env)
            if buffer.count != size {
                buffer.removeAll(keepingCapacity: true)
                buffer.append(contentsOf: repeatElement(0, count: size))
            }
            let written = buffer.withUnsafeMutableBufferPointer { rlif__v1__envelope__pack(env, $0.baseAddress!) }
            precondition(written == size, "protobuf-c packed \(written) bytes, announced \(size)")
        }
    }

    /// Encodes into caller-owned memory (e.g. a buffer handed to a zero-copy send); returns the bytes written.
    public static func encode(_ e: Envelope, into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        let result: Result<Int, WireError> = withCEnvelope(e) { env in
            let size = rlif__v1__envelope__get_packed_size(env)
            guard size <= buffer.count, let base = buffer.baseAddress else {
                return .failure(.bufferTooSmall(needed: size, available: buffer.count))
            }
            return .success(rlif__v1__envelope__pack(env, base.assumingMemoryBound(to: UInt8.self)))
        }
        return try result.get()
    }

    /// Builds the protobuf-c tree of `e` (valid only inside `body`).
    static func withCEnvelope<R>(_ e: Envelope, _ body: (UnsafeMutablePointer<Rlif__V1__Envelope>) -> R) -> R {
        let a = CArena()
        defer { withExtendedLifetime(a) {} }
        let env = a.make(Rlif__V1__Envelope.self, rlif__v1__envelope__init)
        env.pointee.protocol_version = e.protocolVersion
        env.pointee.sender = a.string(e.sender)
        env.pointee.sent_unix_ms = e.sentUnixMs
        env.pointee.learner_incarnation = e.learnerIncarnation
        switch e.body {
        case .hello(let m):
            let c = a.make(Rlif__V1__Hello.self, rlif__v1__hello__init)
            c.pointee.actor_id = a.string(m.actorId)
            c.pointee.hostname = a.string(m.hostname)
            c.pointee.pid = m.pid
            c.pointee.max_batch_sequences = m.maxBatchSequences
            c.pointee.weight_version = m.weightVersion
            c.pointee.applies_adapters = m.appliesAdapters ? 1 : 0
            env.pointee.body_case = RLIF__V1__ENVELOPE__BODY_HELLO
            env.pointee.hello = c
        case .welcome(let m):
            let c = a.make(Rlif__V1__Welcome.self, rlif__v1__welcome__init)
            c.pointee.run_id = a.string(m.runId)
            c.pointee.current_weight_version = m.currentWeightVersion
            c.pointee.model_config_json = a.string(m.modelConfigJson)
            c.pointee.heartbeat_interval_ms = m.heartbeatIntervalMs
            c.pointee.heartbeat_timeout_ms = m.heartbeatTimeoutMs
            if let l = m.lora {
                let spec = a.make(Rlif__V1__AdapterSpec.self, rlif__v1__adapter_spec__init)
                spec.pointee.rank = l.rank
                spec.pointee.alpha = l.alpha
                (spec.pointee.n_target_modules, spec.pointee.target_modules) = a.strings(l.targetModules)
                c.pointee.lora = spec
            }
            env.pointee.body_case = RLIF__V1__ENVELOPE__BODY_WELCOME
            env.pointee.welcome = c
        case .heartbeat(let m):
            let c = a.make(Rlif__V1__Heartbeat.self, rlif__v1__heartbeat__init)
            c.pointee.weight_version = m.weightVersion
            (c.pointee.n_tasks_in_progress, c.pointee.tasks_in_progress) = a.array(m.tasksInProgress)
            c.pointee.credits_outstanding = m.creditsOutstanding
            env.pointee.body_case = RLIF__V1__ENVELOPE__BODY_HEARTBEAT
            env.pointee.heartbeat = c
        case .workRequest(let m):
            let c = a.make(Rlif__V1__WorkRequest.self, rlif__v1__work_request__init)
            c.pointee.credits = m.credits
            env.pointee.body_case = RLIF__V1__ENVELOPE__BODY_WORK_REQUEST
            env.pointee.work_request = c
        case .workItem(let m):
            let s = a.make(Rlif__V1__SamplingParams.self, rlif__v1__sampling_params__init)
            s.pointee.temperature = m.sampling.temperature
            s.pointee.top_p = m.sampling.topP
            s.pointee.top_k = m.sampling.topK
            s.pointee.max_new_tokens = m.sampling.maxNewTokens
            (s.pointee.n_stop_token_ids, s.pointee.stop_token_ids) = a.array(m.sampling.stopTokenIds)
            let seqs = a.pointers(Rlif__V1__TokenSequence.self, count: m.sampling.stopSequences.count)
            for (i, seq) in m.sampling.stopSequences.enumerated() {
                let t = a.make(Rlif__V1__TokenSequence.self, rlif__v1__token_sequence__init)
                (t.pointee.n_token_ids, t.pointee.token_ids) = a.array(seq)
                seqs?[i] = t
            }
            s.pointee.n_stop_sequences = m.sampling.stopSequences.count
            s.pointee.stop_sequences = seqs
            let c = a.make(Rlif__V1__WorkItem.self, rlif__v1__work_item__init)
            c.pointee.task_id = m.taskId
            c.pointee.prompt_id = a.string(m.promptId)
            (c.pointee.n_prompt_tokens, c.pointee.prompt_tokens) = a.array(m.promptTokens)
            c.pointee.group_size = m.groupSize
            c.pointee.sampling = s
            c.pointee.seed = m.seed
            c.pointee.min_weight_version = m.minWeightVersion
            c.pointee.deadline_ms = m.deadlineMs
            env.pointee.body_case = RLIF__V1__ENVELOPE__BODY_WORK_ITEM
            env.pointee.work_item = c
        case .noWork(let m):
            let c = a.make(Rlif__V1__NoWork.self, rlif__v1__no_work__init)
            c.pointee.retry_after_ms = m.retryAfterMs
            c.pointee.finished = m.finished ? 1 : 0
            c.pointee.reason = a.string(m.reason)
            env.pointee.body_case = RLIF__V1__ENVELOPE__BODY_NO_WORK
            env.pointee.no_work = c
        case .rolloutGroup(let m):
            let t = a.make(Rlif__V1__Timings.self, rlif__v1__timings__init)
            t.pointee.prefill_ms = m.timings.prefillMs
            t.pointee.decode_ms = m.timings.decodeMs
            t.pointee.generated_tokens = m.timings.generatedTokens
            let list = a.pointers(Rlif__V1__Completion.self, count: m.completions.count)
            for (i, comp) in m.completions.enumerated() {
                let cc = a.make(Rlif__V1__Completion.self, rlif__v1__completion__init)
                (cc.pointee.n_tokens, cc.pointee.tokens) = a.array(comp.tokens)
                (cc.pointee.n_logprobs, cc.pointee.logprobs) = a.array(comp.logprobs)
                (cc.pointee.n_self_certainty, cc.pointee.self_certainty) = a.array(comp.selfCertainty)
                (cc.pointee.n_entropy, cc.pointee.entropy) = a.array(comp.entropy)
                cc.pointee.reward = comp.reward
                cc.pointee.finish_reason = .init(rawValue: numericCast(comp.finishReason.rawValue))
                list?[i] = cc
            }
            let c = a.make(Rlif__V1__RolloutGroup.self, rlif__v1__rollout_group__init)
            c.pointee.task_id = m.taskId
            c.pointee.actor_id = a.string(m.actorId)
            c.pointee.weight_version = m.weightVersion
            c.pointee.prompt_id = a.string(m.promptId)
            c.pointee.n_completions = m.completions.count
            c.pointee.completions = list
            c.pointee.timings = t
            env.pointee.body_case = RLIF__V1__ENVELOPE__BODY_ROLLOUT_GROUP
            env.pointee.rollout_group = c
        case .ack(let m):
            let c = a.make(Rlif__V1__Ack.self, rlif__v1__ack__init)
            c.pointee.task_id = m.taskId
            c.pointee.status = .init(rawValue: numericCast(m.status.rawValue))
            c.pointee.detail = a.string(m.detail)
            env.pointee.body_case = RLIF__V1__ENVELOPE__BODY_ACK
            env.pointee.ack = c
        case .weightNotice(let m):
            let c = a.make(Rlif__V1__WeightNotice.self, rlif__v1__weight_notice__init)
            c.pointee.version = m.version
            c.pointee.total_bytes = m.totalBytes
            c.pointee.n_chunks = m.nChunks
            c.pointee.dtype = .init(rawValue: numericCast(m.dtype.rawValue))
            c.pointee.crc32 = m.crc32
            c.pointee.chunk_bytes = m.chunkBytes
            c.pointee.adapter = m.adapter ? 1 : 0
            env.pointee.body_case = RLIF__V1__ENVELOPE__BODY_WEIGHT_NOTICE
            env.pointee.weight_notice = c
        case .snapshotRequest(let m):
            let c = a.make(Rlif__V1__SnapshotRequest.self, rlif__v1__snapshot_request__init)
            c.pointee.version = m.version
            c.pointee.first_chunk = m.firstChunk
            c.pointee.credits = m.credits
            c.pointee.dtype = .init(rawValue: numericCast(m.dtype.rawValue))
            c.pointee.frozen_base = m.kind == .frozenBase ? 1 : 0
            c.pointee.adapter = m.kind == .adapter ? 1 : 0
            env.pointee.body_case = RLIF__V1__ENVELOPE__BODY_SNAPSHOT_REQUEST
            env.pointee.snapshot_request = c
        case .snapshotChunk(let m):
            let list = a.pointers(Rlif__V1__TensorEntry.self, count: m.manifest.count)
            for (i, t) in m.manifest.enumerated() {
                let ct = a.make(Rlif__V1__TensorEntry.self, rlif__v1__tensor_entry__init)
                ct.pointee.name = a.string(t.name)
                (ct.pointee.n_shape, ct.pointee.shape) = a.array(t.shape)
                ct.pointee.offset_elements = t.offsetElements
                list?[i] = ct
            }
            let c = a.make(Rlif__V1__SnapshotChunk.self, rlif__v1__snapshot_chunk__init)
            c.pointee.version = m.version
            c.pointee.chunk_index = m.chunkIndex
            c.pointee.n_chunks = m.nChunks
            c.pointee.dtype = .init(rawValue: numericCast(m.dtype.rawValue))
            c.pointee.offset = m.offset
            c.pointee.crc32 = m.crc32
            c.pointee.total_bytes = m.totalBytes
            c.pointee.n_manifest = m.manifest.count
            c.pointee.manifest = list
            c.pointee.chunk_bytes = m.chunkBytes
            c.pointee.snapshot_crc32 = m.snapshotCRC32
            c.pointee.data_in_next_frame = m.dataInNextFrame ? 1 : 0
            c.pointee.adapter = m.kind == .adapter ? 1 : 0
            c.pointee.frozen_base = m.kind == .frozenBase ? 1 : 0
            env.pointee.body_case = RLIF__V1__ENVELOPE__BODY_SNAPSHOT_CHUNK
            env.pointee.snapshot_chunk = c
            // The payload (up to several MB) is referenced where it lies, not copied into the arena.
            return m.data.withUnsafeBytes { raw in
                c.pointee.data = ProtobufCBinaryData(
                    len: raw.count,
                    data: raw.count == 0 ? nil : UnsafeMutablePointer(mutating: raw.baseAddress!.assumingMemoryBound(to: UInt8.self)))
                return body(env)
            }
        case .error(let m):
            let c = a.make(Rlif__V1__Error.self, rlif__v1__error__init)
            c.pointee.code = .init(rawValue: numericCast(m.code.rawValue))
            c.pointee.message = a.string(m.message)
            c.pointee.field = a.string(m.field)
            env.pointee.body_case = RLIF__V1__ENVELOPE__BODY_ERROR
            env.pointee.error = c
        case .goodbye(let m):
            let c = a.make(Rlif__V1__Goodbye.self, rlif__v1__goodbye__init)
            c.pointee.reason = a.string(m.reason)
            env.pointee.body_case = RLIF__V1__ENVELOPE__BODY_GOODBYE
            env.pointee.goodbye = c
        case .taskFailure(let m):
            let c = a.make(Rlif__V1__TaskFailure.self, rlif__v1__task_failure__init)
            c.pointee.task_id = m.taskId
            c.pointee.error = a.string(m.error)
            env.pointee.body_case = RLIF__V1__ENVELOPE__BODY_TASK_FAILURE
            env.pointee.task_failure = c
        case .statusRequest:
            let c = a.make(Rlif__V1__StatusRequest.self, rlif__v1__status_request__init)
            env.pointee.body_case = RLIF__V1__ENVELOPE__BODY_STATUS_REQUEST
            env.pointee.status_request = c
        case .statusReply(let m):
            let c = a.make(Rlif__V1__StatusReply.self, rlif__v1__status_reply__init)
            c.pointee.status_json = a.string(m.statusJson)
            env.pointee.body_case = RLIF__V1__ENVELOPE__BODY_STATUS_REPLY
            env.pointee.status_reply = c
        }
        return body(env)
    }

    // MARK: Decoding

    /// Decodes and validates one envelope. Never crashes on any input: either returns an envelope whose every
    /// documented invariant holds, or throws a `WireError` naming the field.
    public static func decode(_ bytes: UnsafeRawBufferPointer, maxBytes: Int = defaultMaxBytes) throws(WireError) -> Envelope {
        guard bytes.count <= maxBytes else { throw .tooLarge(bytes: bytes.count, limit: maxBytes) }
        let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        guard let env = rlif__v1__envelope__unpack(nil, bytes.count, base) else {
            throw .malformed(bytes: bytes.count)
        }
        defer { rlif__v1__envelope__free_unpacked(env, nil) }
        let e = env.pointee
        guard e.protocol_version == Wire.protocolVersion else {
            throw .protocolVersion(got: e.protocol_version, expected: Wire.protocolVersion)
        }
        let body = try decodeBody(e)
        return Envelope(sender: str(e.sender), sentUnixMs: e.sent_unix_ms, body: body, protocolVersion: e.protocol_version,
                        learnerIncarnation: e.learner_incarnation)
    }

    /// Decodes and validates one envelope from an array.
    public static func decode(_ bytes: [UInt8], maxBytes: Int = defaultMaxBytes) throws(WireError) -> Envelope {
        let r: Result<Envelope, WireError> = bytes.withUnsafeBytes { raw in
            do throws(WireError) { return .success(try decode(raw, maxBytes: maxBytes)) } catch { return .failure(error) }
        }
        return try r.get()
    }

    private static func decodeBody(_ e: Rlif__V1__Envelope) throws(WireError) -> Message {
        switch e.body_case {
        case RLIF__V1__ENVELOPE__BODY_HELLO:
            let c = try need(e.hello, "hello")
            return .hello(Hello(actorId: str(c.actor_id), hostname: str(c.hostname), pid: c.pid,
                                maxBatchSequences: c.max_batch_sequences, weightVersion: c.weight_version,
                                appliesAdapters: c.applies_adapters != 0))
        case RLIF__V1__ENVELOPE__BODY_WELCOME:
            let c = try need(e.welcome, "welcome")
            return .welcome(Welcome(runId: str(c.run_id), currentWeightVersion: c.current_weight_version,
                                    modelConfigJson: str(c.model_config_json),
                                    heartbeatIntervalMs: c.heartbeat_interval_ms,
                                    heartbeatTimeoutMs: c.heartbeat_timeout_ms,
                                    lora: try c.lora.map { p throws(WireError) in try decodeAdapterSpec(p.pointee) }))
        case RLIF__V1__ENVELOPE__BODY_HEARTBEAT:
            let c = try need(e.heartbeat, "heartbeat")
            return .heartbeat(Heartbeat(weightVersion: c.weight_version,
                                        tasksInProgress: try array(c.tasks_in_progress, c.n_tasks_in_progress,
                                                                   "heartbeat.tasks_in_progress"),
                                        creditsOutstanding: c.credits_outstanding))
        case RLIF__V1__ENVELOPE__BODY_WORK_REQUEST:
            let c = try need(e.work_request, "work_request")
            return .workRequest(WorkRequest(credits: c.credits))
        case RLIF__V1__ENVELOPE__BODY_WORK_ITEM:
            let c = try need(e.work_item, "work_item")
            let s = try need(c.sampling, "work_item.sampling")
            try finite(s.temperature, "work_item.sampling.temperature")
            try finite(s.top_p, "work_item.sampling.top_p")
            guard s.temperature >= 0 else {
                throw .invalidValue(field: "work_item.sampling.temperature", reason: "is \(s.temperature), must be >= 0")
            }
            guard s.top_p > 0 && s.top_p <= 1 else {
                throw .invalidValue(field: "work_item.sampling.top_p", reason: "is \(s.top_p), must be in (0, 1]")
            }
            guard c.group_size >= 1 else {
                throw .invalidValue(field: "work_item.group_size", reason: "is 0, must be >= 1")
            }
            guard s.n_stop_sequences <= SamplingParams.maxStopSequences else {
                throw .invalidValue(field: "work_item.sampling.stop_sequences",
                                    reason: "has \(s.n_stop_sequences) entries, at most \(SamplingParams.maxStopSequences)")
            }
            guard s.n_stop_sequences == 0 || s.stop_sequences != nil else { throw .missingField("work_item.sampling.stop_sequences") }
            var stopSequences: [[UInt32]] = []
            for i in 0..<s.n_stop_sequences {
                let path = "work_item.sampling.stop_sequences[\(i)]"
                let t = try need(s.stop_sequences[i], path)
                let ids = try array(t.token_ids, t.n_token_ids, path + ".token_ids")
                guard !ids.isEmpty, ids.count <= SamplingParams.maxStopSequenceTokens else {
                    throw .invalidValue(field: path + ".token_ids",
                                        reason: "has \(ids.count) tokens, must have 1…\(SamplingParams.maxStopSequenceTokens)")
                }
                stopSequences.append(ids)
            }
            let sampling = SamplingParams(
                temperature: s.temperature, topP: s.top_p, topK: s.top_k, maxNewTokens: s.max_new_tokens,
                stopTokenIds: try array(s.stop_token_ids, s.n_stop_token_ids, "work_item.sampling.stop_token_ids"),
                stopSequences: stopSequences)
            return .workItem(WorkItem(
                taskId: c.task_id, promptId: str(c.prompt_id),
                promptTokens: try array(c.prompt_tokens, c.n_prompt_tokens, "work_item.prompt_tokens"),
                groupSize: c.group_size, sampling: sampling, seed: c.seed,
                minWeightVersion: c.min_weight_version, deadlineMs: c.deadline_ms))
        case RLIF__V1__ENVELOPE__BODY_NO_WORK:
            let c = try need(e.no_work, "no_work")
            return .noWork(NoWork(retryAfterMs: c.retry_after_ms, finished: c.finished != 0, reason: str(c.reason)))
        case RLIF__V1__ENVELOPE__BODY_ROLLOUT_GROUP:
            return .rolloutGroup(try decodeRolloutGroup(try need(e.rollout_group, "rollout_group")))
        case RLIF__V1__ENVELOPE__BODY_ACK:
            let c = try need(e.ack, "ack")
            return .ack(Ack(taskId: c.task_id, status: try enumValue(c.status.rawValue, "ack.status"),
                            detail: str(c.detail)))
        case RLIF__V1__ENVELOPE__BODY_WEIGHT_NOTICE:
            let c = try need(e.weight_notice, "weight_notice")
            return .weightNotice(WeightNotice(
                version: c.version, totalBytes: c.total_bytes, nChunks: c.n_chunks,
                dtype: try enumValue(c.dtype.rawValue, "weight_notice.dtype"), crc32: c.crc32,
                chunkBytes: c.chunk_bytes, adapter: c.adapter != 0))
        case RLIF__V1__ENVELOPE__BODY_SNAPSHOT_REQUEST:
            let c = try need(e.snapshot_request, "snapshot_request")
            let kind = try snapshotKind(adapter: c.adapter, frozenBase: c.frozen_base, "snapshot_request")
            guard kind != .frozenBase || c.version == 0 else {
                throw .invalidValue(field: "snapshot_request.version", reason: "is \(c.version) with frozen_base set; the frozen base has no version (0)")
            }
            return .snapshotRequest(SnapshotRequest(
                version: c.version, firstChunk: c.first_chunk, credits: c.credits,
                dtype: try enumValue(c.dtype.rawValue, "snapshot_request.dtype"), kind: kind))
        case RLIF__V1__ENVELOPE__BODY_SNAPSHOT_CHUNK:
            return .snapshotChunk(try decodeSnapshotChunk(try need(e.snapshot_chunk, "snapshot_chunk")))
        case RLIF__V1__ENVELOPE__BODY_ERROR:
            let c = try need(e.error, "error")
            return .error(ErrorMessage(code: try enumValue(c.code.rawValue, "error.code"),
                                       message: str(c.message), field: str(c.field)))
        case RLIF__V1__ENVELOPE__BODY_GOODBYE:
            let c = try need(e.goodbye, "goodbye")
            return .goodbye(Goodbye(reason: str(c.reason)))
        case RLIF__V1__ENVELOPE__BODY_TASK_FAILURE:
            let c = try need(e.task_failure, "task_failure")
            return .taskFailure(TaskFailure(taskId: c.task_id, error: str(c.error)))
        case RLIF__V1__ENVELOPE__BODY_STATUS_REQUEST:
            _ = try need(e.status_request, "status_request")
            return .statusRequest(StatusRequest())
        case RLIF__V1__ENVELOPE__BODY_STATUS_REPLY:
            let c = try need(e.status_reply, "status_reply")
            return .statusReply(StatusReply(statusJson: str(c.status_json)))
        default:
            throw .missingBody
        }
    }

    private static func decodeRolloutGroup(_ c: Rlif__V1__RolloutGroup) throws(WireError) -> RolloutGroup {
        let t = try need(c.timings, "rollout_group.timings")
        try finite(t.prefill_ms, "rollout_group.timings.prefill_ms")
        try finite(t.decode_ms, "rollout_group.timings.decode_ms")
        guard c.n_completions == 0 || c.completions != nil else { throw .missingField("rollout_group.completions") }
        var completions: [Completion] = []
        completions.reserveCapacity(c.n_completions)
        for i in 0..<c.n_completions {
            let path = "rollout_group.completions[\(i)]"
            let cc = try need(c.completions[i], path)
            guard cc.n_logprobs == cc.n_tokens else {
                throw .lengthMismatch(field: "\(path).logprobs", count: cc.n_logprobs,
                                      expectedField: "\(path).tokens", expected: cc.n_tokens)
            }
            guard cc.n_self_certainty == cc.n_tokens else {
                throw .lengthMismatch(field: "\(path).self_certainty", count: cc.n_self_certainty,
                                      expectedField: "\(path).tokens", expected: cc.n_tokens)
            }
            guard cc.n_entropy == 0 || cc.n_entropy == cc.n_tokens else {
                throw .lengthMismatch(field: "\(path).entropy", count: cc.n_entropy,
                                      expectedField: "\(path).tokens", expected: cc.n_tokens)
            }
            let logprobs = try floats(cc.logprobs, cc.n_logprobs, "\(path).logprobs")
            let sc = try floats(cc.self_certainty, cc.n_self_certainty, "\(path).self_certainty")
            let entropy = try floats(cc.entropy, cc.n_entropy, "\(path).entropy")
            try finite(cc.reward, "\(path).reward")
            completions.append(Completion(
                tokens: try array(cc.tokens, cc.n_tokens, "\(path).tokens"), logprobs: logprobs, selfCertainty: sc,
                reward: cc.reward, finishReason: try enumValue(cc.finish_reason.rawValue, "\(path).finish_reason"),
                entropy: entropy))
        }
        return RolloutGroup(taskId: c.task_id, actorId: str(c.actor_id), weightVersion: c.weight_version,
                            promptId: str(c.prompt_id), completions: completions,
                            timings: Timings(prefillMs: t.prefill_ms, decodeMs: t.decode_ms,
                                             generatedTokens: t.generated_tokens))
    }

    private static func decodeSnapshotChunk(_ c: Rlif__V1__SnapshotChunk) throws(WireError) -> SnapshotChunk {
        guard c.n_manifest == 0 || c.manifest != nil else { throw .missingField("snapshot_chunk.manifest") }
        var manifest: [TensorEntry] = []
        manifest.reserveCapacity(c.n_manifest)
        for i in 0..<c.n_manifest {
            let path = "snapshot_chunk.manifest[\(i)]"
            let t = try need(c.manifest[i], path)
            manifest.append(TensorEntry(name: str(t.name), shape: try array(t.shape, t.n_shape, "\(path).shape"),
                                        offsetElements: t.offset_elements))
        }
        guard c.data.len == 0 || c.data.data != nil else { throw .missingField("snapshot_chunk.data") }
        // Array(UnsafeBufferPointer) is one memcpy; ArraySlice(...) of a buffer would copy element by element.
        let data = Array(UnsafeBufferPointer(start: c.data.data, count: c.data.len))[...]
        if c.data_in_next_frame != 0 && c.data.len > 0 {
            throw .invalidValue(field: "snapshot_chunk.data", reason: "has \(c.data.len) bytes although data_in_next_frame is set")
        }
        return SnapshotChunk(version: c.version, chunkIndex: c.chunk_index, nChunks: c.n_chunks,
                             dtype: try enumValue(c.dtype.rawValue, "snapshot_chunk.dtype"), offset: c.offset,
                             data: data, crc32: c.crc32, totalBytes: c.total_bytes, manifest: manifest,
                             chunkBytes: c.chunk_bytes, snapshotCRC32: c.snapshot_crc32,
                             dataInNextFrame: c.data_in_next_frame != 0,
                             kind: try snapshotKind(adapter: c.adapter, frozenBase: c.frozen_base, "snapshot_chunk"))
    }

    /// `adapter` / `frozen_base` of a request or chunk: at most one is set.
    private static func snapshotKind(adapter: protobuf_c_boolean, frozenBase: protobuf_c_boolean,
                                     _ message: String) throws(WireError) -> SnapshotKind {
        switch (adapter != 0, frozenBase != 0) {
        case (false, false): return .full
        case (true, false): return .adapter
        case (false, true): return .frozenBase
        case (true, true):
            throw .invalidValue(field: "\(message).frozen_base", reason: "is set together with \(message).adapter (at most one)")
        }
    }

    private static func decodeAdapterSpec(_ c: Rlif__V1__AdapterSpec) throws(WireError) -> AdapterSpec {
        guard c.rank >= 1 else { throw .invalidValue(field: "welcome.lora.rank", reason: "is 0, must be >= 1") }
        try finite(c.alpha, "welcome.lora.alpha")
        guard c.alpha > 0 else { throw .invalidValue(field: "welcome.lora.alpha", reason: "is \(c.alpha), must be > 0") }
        guard c.n_target_modules > 0, let names = c.target_modules else {
            throw .invalidValue(field: "welcome.lora.target_modules", reason: "is empty, must name at least one module")
        }
        return AdapterSpec(rank: c.rank, alpha: c.alpha,
                           targetModules: (0..<c.n_target_modules).map { str(names[$0]) })
    }

    // MARK: Helpers

    private static func str(_ p: UnsafeMutablePointer<CChar>?) -> String {
        guard let p else { return "" }
        return String(cString: p)  // invalid UTF-8 is repaired with U+FFFD, never trapped on
    }

    private static func need<T>(_ p: UnsafeMutablePointer<T>?, _ field: String) throws(WireError) -> T {
        guard let p else { throw .missingField(field) }
        return p.pointee
    }

    private static func array<T>(_ p: UnsafeMutablePointer<T>?, _ n: Int, _ field: String) throws(WireError) -> [T] {
        guard n > 0 else { return [] }
        guard let p else { throw .missingField(field) }
        return Array(UnsafeBufferPointer(start: p, count: n))
    }

    /// Copies floats out, checking each is finite; the error names the first bad index.
    private static func floats(_ p: UnsafeMutablePointer<Float>?, _ n: Int, _ field: String) throws(WireError) -> [Float] {
        let a = try array(p, n, field)
        if let i = a.firstIndex(where: { !$0.isFinite }) { throw .nonFinite(field: "\(field)[\(i)]") }
        return a
    }

    private static func finite(_ x: Float, _ field: String) throws(WireError) {
        guard x.isFinite else { throw .nonFinite(field: field) }
    }

    private static func enumValue<E: RawRepresentable<Int32>, R: BinaryInteger>(_ raw: R, _ field: String) throws(WireError) -> E {
        guard let v = Int32(exactly: raw), let e = E(rawValue: v) else {
            throw .invalidValue(field: field, reason: "unknown enum value \(raw)")
        }
        return e
    }
}

/// Memory for one protobuf-c tree being encoded: every allocation is freed when the arena dies.
/// Strings and small repeated fields are copied here (a RolloutGroup of 8 x 1024 tokens is ~100 KB: a memcpy,
/// small next to packing it); large byte payloads are referenced in place by the caller instead.
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    deinit { for b in blocks { free(b) } }

    private func alloc(_ bytes: Int) -> UnsafeMutableRawPointer {
        guard let p = malloc(max(bytes, 1)) else { fatalError("CArena: out of memory allocating \(bytes) bytes") }
        blocks.append(p)
        return p
    }

    /// A protobuf-c message initialised by its generated `__init` function.
    func make<T>(_: T.Type, _ initialise: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let p = alloc(MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: 1)
        initialise(p)
        return p
    }

    /// A NUL-terminated copy (protobuf-c treats NULL and "" alike; NULL for "" saves the copy).
    func string(_ s: String) -> UnsafeMutablePointer<CChar>? {
        if s.isEmpty { return nil }
        var s = s
        return s.withUTF8 { u in
            let p = alloc(u.count + 1).bindMemory(to: CChar.self, capacity: u.count + 1)
            u.withMemoryRebound(to: CChar.self) { p.update(from: $0.baseAddress!, count: u.count) }
            p[u.count] = 0
            return p
        }
    }

    /// A copy of a repeated scalar field as (count, pointer).
    func array<T>(_ a: [T]) -> (Int, UnsafeMutablePointer<T>?) {
        guard !a.isEmpty else { return (0, nil) }
        let p = alloc(MemoryLayout<T>.stride * a.count).bindMemory(to: T.self, capacity: a.count)
        a.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: a.count) }
        return (a.count, p)
    }

    /// A copy of a repeated string field as (count, pointer); every element non-NULL (protobuf-c packs each).
    func strings(_ a: [String]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        guard let list = pointers(CChar.self, count: a.count) else { return (0, nil) }
        for (i, s) in a.enumerated() {
            if let p = string(s) { list[i] = p } else {
                let p = alloc(1).bindMemory(to: CChar.self, capacity: 1)
                p[0] = 0
                list[i] = p
            }
        }
        return (a.count, list)
    }

    /// Storage for a repeated message field (an array of pointers).
    func pointers<T>(_: T.Type, count: Int) -> UnsafeMutablePointer<UnsafeMutablePointer<T>?>? {
        guard count > 0 else { return nil }
        return alloc(MemoryLayout<UnsafeMutablePointer<T>?>.stride * count)
            .bindMemory(to: UnsafeMutablePointer<T>?.self, capacity: count)
    }
}
