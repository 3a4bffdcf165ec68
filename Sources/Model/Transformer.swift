import Foundation
import Kernels
import Shared

/// A Llama / Qwen2 decoder-only causal LM on CPU, composed from `Kernels` ops over one flat parameter buffer.
///
/// Training path: `forwardHead(batch, …)` over a `PackedBatch` (variable-length sequences, no padding) runs the
/// layers and the fused LM head (`lmHeadForward`: per-row token log-prob at T, self-certainty, entropy without a
/// (R, V) logits buffer) and keeps what the backward needs in a reusable arena; `backwardHead(dLogp:)` accumulates
/// parameter gradients into `gradients` (same `ParameterLayout` as `parameters`). `forward` / `backward(dLogits:)`
/// are the same with materialised (R, V) logits (tests, the bench's forward; decode-size rows). With
/// `activationCheckpointing` the forward keeps only each layer's input and the backward recomputes the layer.
/// Inference path (KV cache, prefill / fork / batched decode) is in `Transformer+Decode.swift`.
///
/// Not thread-safe: one forward/backward/decode at a time (the kernels use both cores inside each op).
public final class Transformer {
    public let config: ModelConfig
    public let layout: ParameterLayout
    /// All parameters, `layout` gives each tensor's offset. Writable (e.g. optimizer steps, weight broadcasts);
    /// a KV cache filled before a weight change is stale afterwards. With `baseWeights == .bf16` only the
    /// vectors (norms, biases) are here — the matrices are in `matricesBF16` and their ranges of this buffer are
    /// never written (nor resident); read and write whole tensors through `readTensor` / `setTensor` then.
    public let parameters: FloatBuffer
    /// How the matrices (embedding, projections, LM head) are held: F32 in `parameters`, or BF16.
    public let baseWeights: BaseWeights
    /// The matrices as bfloat16 at `layout`'s offsets (in 2-byte elements) when `baseWeights == .bf16`.
    public let matricesBF16: BF16Buffer?
    /// Gradient accumulators (same layout), allocated on first use. With `lora` attached the backward never
    /// touches (or allocates) this: the base is frozen and the gradients go to `lora.gradients`.
    public var gradients: FloatBuffer {
        if let g = grads { return g }
        let g = FloatBuffer(count: layout.totalCount)
        grads = g
        return g
    }
    private var grads: FloatBuffer?
    /// Whether the full gradient buffer exists (never with LoRA: the frozen base has none).
    public var hasBaseGradients: Bool { grads != nil }
    public let rope: RopeTable

    var acts: Activations?
    /// What the last forward ran on (backward needs it).
    private var lastBatch: PackedBatch?
    private var lastRows: [Int]?
    private var lastForBackward = false
    private var lastForwardHadAdapters = false
    /// What the last `forwardHead` saved for `backwardHead` (nil after a materialising `forward`).
    private var lastHead: HeadSaved?
    private struct HeadSaved {
        var targets: [Int32]
        var lse: [Float]
        var temperature: Float
        /// The forward left every chunk's logits in `headScratch` (no recompute in the backward).
        var kept: Bool
    }
    /// (R, V) logits of the materialising `forward`, grown on demand (the fused head never allocates it).
    private var logitsStore: FloatBuffer?
    /// (R, chunk) scratch of the fused head, or (R, V) when a training forward keeps its logits; grown on demand.
    private var headScratch: FloatBuffer?
    var decodeState: DecodeState?
    /// Threads the decode step's linear layers split their output columns over; nil = automatic (2 on the
    /// target machine when the product is big enough and BLAS is not pinned to 1 thread). Per model, so a test
    /// can force the split without touching process-wide BLAS settings.
    public var decodeColumnWorkers: Int?
    /// Keep only each layer's input in a forward for backward, and recompute the layer inside the backward
    /// (≈ one more forward of the layers; the activation memory of all but one layer is saved). Gradients are
    /// bitwise those of the plain path (TransformerTests.checkpointedGradientsAreBitwiseEqual).
    public var activationCheckpointing = false
    /// Vocabulary columns per chunk of the fused LM head; nil = `lmHeadChunkColumns(rows:vocab:)`.
    public var headChunkColumns: Int?
    /// LoRA adapters: when set, every forward adds s·B·A·x to the targeted linear layers (while
    /// `lora.enabled`), and the backward freezes the base (no base gradient at all) and accumulates only the
    /// adapters' gradients (`loraBackward`). Set it before the first forward of a training run.
    public var lora: LoRAAdapters? {
        didSet { lastForwardInvalidated() }
    }
    /// (C) sink for the RMSNorm weight gradients the frozen base does not keep (the kernel always writes one).
    private var frozenNormSink: FloatBuffer?

    /// The buffer the optimizer updates and the one the backward accumulates into: the adapters with LoRA,
    /// every parameter otherwise.
    public var trainableParameters: FloatBuffer { lora?.parameters ?? parameters }
    public var trainableGradients: FloatBuffer { lora?.gradients ?? gradients }
    /// A training `forwardHead` whose (R, V) logits take at most this many bytes keeps them for `backwardHead`
    /// instead of recomputing them there (the recompute is +1/3 of the head's FLOPs; small heads, e.g. the bench's
    /// 1024 × 16,384, keep theirs). Larger ones — Qwen2.5's 151,936 columns beyond ~220 rows — recompute, and
    /// the head's memory is O(R × chunk). 0 = always recompute.
    public var headKeepLogitsBytes = 128 << 20

    /// A model with all parameters zero (fill them with `load`, `initializeRandom`, or by writing `parameters`,
    /// `setTensor` with BF16 base weights).
    public init(config: ModelConfig, baseWeights: BaseWeights = .f32) throws {
        try config.validate()
        self.config = config
        layout = ParameterLayout(config: config)
        self.baseWeights = baseWeights
        switch baseWeights {
        case .f32:
            parameters = FloatBuffer(count: layout.totalCount)
            matricesBF16 = nil
        case .bf16:
            parameters = FloatBuffer(untouchedCount: layout.totalCount)
            matricesBF16 = BF16Buffer(count: layout.totalCount)
        }
        rope = RopeTable(headDim: config.headDim, maxPositions: config.maxPositionEmbeddings, theta: config.ropeTheta)
    }

    /// Number of real parameters (alignment padding excluded; tied lm_head counted once).
    public var parameterCount: Int { layout.parameterCount }

    /// The slice of `parameters` holding an HF-named tensor.
    public func parameter(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
        layout.entry(name).map { UnsafeMutableBufferPointer(start: parameters.pointer + $0.offset, count: $0.count) }
    }

    /// The slice of `gradients` for an HF-named tensor.
    public func gradient(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
        layout.entry(name).map { UnsafeMutableBufferPointer(start: gradients.pointer + $0.offset, count: $0.count) }
    }

    /// Zeroes what the backward accumulates into (`trainableGradients`).
    public func zeroGradients() { trainableGradients.zero() }

    /// Deterministic random init like HF `_init_weights`: normal(0, std) for matrices and embeddings, ones for
    /// RMSNorm weights, zeros for biases (or small normals when `biasStd` > 0, useful for tests).
    /// With BF16 base weights the matrices are these values rounded to BF16 (same random stream).
    public func initializeRandom(seed: UInt64, std: Float = 0.02, biasStd: Float = 0) {
        var rng = SplitMix64(seed: seed)
        for e in layout.entries {
            loadTensor(e) { p in
                if e.name.hasSuffix("norm.weight") {
                    p.update(repeating: 1, count: e.count)
                } else if e.name.hasSuffix(".bias") {
                    for i in 0..<e.count { p[i] = biasStd * Float(rng.nextGaussian()) }
                } else {
                    for i in 0..<e.count { p[i] = std * Float(rng.nextGaussian()) }
                }
            }
        }
    }

    /// Makes sure the arena holds `tokens` rows and `rows` logit rows with at least `storage` (grows, never shrinks).
    func ensureArena(tokens: Int, rows: Int, storage: LayerStorage) -> Activations {
        if let a = acts, a.tokenCapacity >= tokens, a.rowCapacity >= rows, a.storage >= storage { return a }
        let n = max(tokens, acts?.tokenCapacity ?? 0), r = max(rows, acts?.rowCapacity ?? 0)
        let s = max(storage, acts?.storage ?? .shared)
        // The old arena is freed before the new one is allocated (no local keeps it): holding both made a
        // growing micro-batch cost twice the arena for a moment — +0.9 GB on SmolLM2-135M at 1024 tokens, and
        // the ~3.4 GiB the memory plan missed on the real 0.5B LoRA run (docs/PERFORMANCE.md).
        acts = nil
        let a = Activations(config: config, tokens: n, rows: r, storage: s)
        acts = a
        return a
    }

    /// Frees the forward/backward arena and the LM head's scratch (reallocated by the next forward). A run that
    /// alternates sampling and training calls this after training, so that the training arena (the largest
    /// activation buffer, ~2 MB per token for Qwen2.5-0.5B) is not resident while it samples.
    public func releaseActivations() {
        acts = nil
        headScratch = nil
        logitsStore = nil
        lastForwardInvalidated()
    }

    /// Frees the KV cache and decode buffers (`reserveDecoding` allocates them again): called before training, so
    /// that sampling's state is not resident beside the training arena.
    public func releaseDecoding() {
        decodeState = nil
    }

    /// Activation floats a forward of `tokens` rows with `rows` logit rows keeps (the arena; excludes logits and
    /// the head's chunk scratch), for memory estimates.
    public func activationFloats(tokens: Int, rows: Int, forBackward: Bool) -> Int {
        Activations.floatCount(config: config, tokens: tokens, rows: rows, storage: storage(forBackward: forBackward))
    }

    private func storage(forBackward: Bool) -> LayerStorage {
        forBackward ? (activationCheckpointing ? .inputs : .full) : .shared
    }

    /// Validates, runs the layers and gathers the logit rows; returns the arena, the head's input rows (R, C)
    /// and R.
    private func runBody(_ batch: PackedBatch, logitRows: [Int]?, forBackward: Bool) throws
        -> (a: Activations, headInput: UnsafeMutablePointer<Float>, rows: Int) {
        try batch.validate(vocabSize: config.vocabSize, maxPositions: config.maxPositionEmbeddings)
        let n = batch.tokenCount
        if let rows = logitRows, let bad = rows.first(where: { $0 < 0 || $0 >= n }) {
            throw ModelError.invalidInput("logitRows contains \(bad), not in 0..<\(n)")
        }
        let r = logitRows?.count ?? n
        let a = ensureArena(tokens: max(1, n), rows: max(1, r), storage: storage(forBackward: forBackward))
        lastBatch = batch
        lastRows = logitRows
        lastForBackward = forBackward
        lastHead = nil
        lastForwardHadAdapters = lora?.enabled ?? false
        runLayers(batch, a, cacheSlots: nil)
        let c = config.hiddenSize
        guard let rows = logitRows else { return (a, a.lnf, n) }
        for (j, i) in rows.enumerated() { (a.compact + j * c).update(from: a.lnf + i * c, count: c) }
        return (a, a.compact, r)
    }

    /// Runs the model on a packed batch. Returns the logits (R, V) for `logitRows` (row indices into the batch,
    /// ascending or not), or for every row when nil. The returned buffer is valid until the next forward /
    /// decode call. `forBackward: false` skips keeping activations for a backward (inference use).
    /// Training and scoring use `forwardHead` instead, which never materialises the (R, V) logits.
    @discardableResult
    public func forward(_ batch: PackedBatch, logitRows: [Int]? = nil, forBackward: Bool = true) throws
        -> UnsafeMutableBufferPointer<Float> {
        let (_, input, r) = try runBody(batch, logitRows: logitRows, forBackward: forBackward)
        let v = config.vocabSize, c = config.hiddenSize
        if (logitsStore?.count ?? 0) < max(1, r * v) { logitsStore = nil; logitsStore = FloatBuffer(count: max(1, r * v)) }
        let out = logitsStore!.pointer
        linearForward(out, input, weight(layout.lmHead), nil, n: r, c: c, oc: v)
        return UnsafeMutableBufferPointer(start: out, count: r * v)
    }

    /// Runs the model on a packed batch and the fused LM head (`lmHeadForward`) on `logitRows` (every row when
    /// nil): per row the log-probability of `targets[j]` under softmax(z/T) (0 where the target is −1; the
    /// cross-entropy is −logp at T = 1), and when asked the self-certainty and entropy of the untempered logits.
    /// Head memory is O(R × chunk), no (R, V) buffer, unless a training forward's logits fit
    /// `headKeepLogitsBytes`. `forBackward` keeps what `backwardHead` needs.
    public func forwardHead(_ batch: PackedBatch, logitRows: [Int]? = nil, targets: [Int32], temperature: Float = 1,
                            selfCertainty: Bool = false, entropy: Bool = false, forBackward: Bool = true) throws
        -> LMHeadOutputs {
        let r = logitRows?.count ?? batch.tokenCount, v = config.vocabSize
        guard targets.count == r else {
            throw ModelError.invalidInput("forwardHead: \(targets.count) targets for \(r) logit rows")
        }
        if let bad = targets.firstIndex(where: { $0 < -1 || Int($0) >= v }) {
            throw ModelError.invalidInput("forwardHead: targets[\(bad)] = \(targets[bad]) not in -1..<\(v)")
        }
        guard temperature > 0, temperature.isFinite else {
            throw ModelError.invalidInput("forwardHead: temperature \(temperature) must be finite and > 0")
        }
        let (_, input, _) = try runBody(batch, logitRows: logitRows, forBackward: forBackward)
        var out = LMHeadOutputs(logp: [Float](repeating: 0, count: r),
                                selfCertainty: selfCertainty ? [Float](repeating: 0, count: r) : [],
                                entropy: entropy ? [Float](repeating: 0, count: r) : [])
        var lse = [Float](repeating: 0, count: r)
        let chunk = headChunk(rows: r)
        let keep = forBackward && r * v * 4 <= headKeepLogitsBytes
        let scratch = headScratch(floats: keep ? r * v : r * chunk)
        out.selfCertainty.withUnsafeMutableBufferPointer { sc in
            out.entropy.withUnsafeMutableBufferPointer { en in
                lmHeadForward(&out.logp, &lse, selfCertainty ? sc.baseAddress : nil, entropy ? en.baseAddress : nil,
                              scratch, input, weight(layout.lmHead), targets,
                              n: r, c: config.hiddenSize, v: v, chunk: chunk, temperature: temperature, keep: keep)
            }
        }
        if forBackward { lastHead = HeadSaved(targets: targets, lse: lse, temperature: temperature, kept: keep) }
        return out
    }

    private func headChunk(rows: Int) -> Int {
        max(1, min(config.vocabSize, headChunkColumns ?? lmHeadChunkColumns(rows: rows, vocab: config.vocabSize)))
    }

    private func headScratch(floats: Int) -> UnsafeMutablePointer<Float> {
        if (headScratch?.count ?? 0) < max(1, floats) { headScratch = nil; headScratch = FloatBuffer(count: max(1, floats)) }
        return headScratch!.pointer
    }

    /// Embedding, all decoder layers and the final norm for `batch` into arena `a` (a.lnf holds the result).
    /// When `cacheSlots` is given (one slot per sequence), each layer's post-RoPE K and V rows are also copied
    /// into the KV cache at the sequence's positions.
    func runLayers(_ batch: PackedBatch, _ a: Activations, cacheSlots: [Int]?) {
        let n = batch.tokenCount, c = config.hiddenSize
        let w = parameters.pointer
        batch.tokens.withUnsafeBufferPointer { tok in
            embeddingForward(a.layers[0].xIn, tok.baseAddress!, weight(layout.embedding), n: n, c: c)
        }
        for li in layout.layers.indices {
            let next = li + 1 < a.layers.count ? a.layers[li + 1].xIn : a.xFinal
            layerForward(li, a.layers[li], batch, cacheSlots: cacheSlots, output: next)
        }
        rmsnormForward(a.lnf, a.rstdf, a.xFinal, w + layout.finalNorm, n: n, c: c,
                       eps: Float(config.rmsNormEps))
    }

    /// Decoder layer `li` on `L.xIn`, saving its tensors in `L`; writes the layer's output (the next residual
    /// stream) to `output`, or stops after `L.h` when nil (the recompute inside a checkpointed backward needs
    /// everything the layer's backward reads, not its output).
    func layerForward(_ li: Int, _ L: Activations.Layer, _ batch: PackedBatch, cacheSlots: [Int]?,
                      output: UnsafeMutablePointer<Float>?) {
        let cfg = config
        let n = batch.tokenCount, c = cfg.hiddenSize, qd = cfg.qDim, kvd = cfg.kvDim, f = cfg.intermediateSize
        let nh = cfg.numAttentionHeads, nkv = cfg.numKeyValueHeads, eps = Float(cfg.rmsNormEps)
        let w = parameters.pointer, lo = layout.layers[li]
        func opt(_ o: Int) -> UnsafePointer<Float>? { o < 0 ? nil : UnsafePointer(w + o) }
        // Adapters' A·x rows are kept per layer only when the arena keeps every layer for a backward.
        let keepAll = acts?.storage == .full
        func adapt(_ t: LoRATarget, _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>) {
            guard let ad = lora, ad.enabled, let e = ad.entry(layer: li, target: t) else { return }
            let u = ad.savedRows(e, tokens: n, keepAllLayers: keepAll)
            loraForward(out, u, inp, ad.parameters.pointer + e.a, ad.parameters.pointer + e.b,
                        n: n, c: e.inFeatures, oc: e.outFeatures, r: ad.rank, scale: ad.scale)
        }
        batch.positions.withUnsafeBufferPointer { pos in
            rmsnormForward(L.ln1, L.rstd1, L.xIn, w + lo.inputNorm, n: n, c: c, eps: eps)
            linearForward(L.q, L.ln1, weight(lo.wq), opt(lo.bq), n: n, c: c, oc: qd)
            linearForward(L.k, L.ln1, weight(lo.wk), opt(lo.bk), n: n, c: c, oc: kvd)
            linearForward(L.v, L.ln1, weight(lo.wv), opt(lo.bv), n: n, c: c, oc: kvd)
            adapt(.q, L.q, L.ln1); adapt(.k, L.k, L.ln1); adapt(.v, L.v, L.ln1)
            ropeForward(L.q, pos.baseAddress!, rope, n: n, nHeads: nh)
            ropeForward(L.k, pos.baseAddress!, rope, n: n, nHeads: nkv)
            if let slots = cacheSlots, let st = decodeState {
                st.cache.store(layer: li, k: L.k, v: L.v, batch: batch, slots: slots)
            }
            attentionForward(L.att, L.lse, L.q, L.k, L.v, seqStarts: batch.seqStarts,
                             nHeads: nh, nKVHeads: nkv, headDim: cfg.headDim)
            linearForward(L.res1, L.att, weight(lo.wo), opt(lo.bo), n: n, c: qd, oc: c)
            adapt(.o, L.res1, L.att)
            addForward(L.res1, L.res1, L.xIn, count: n * c)
            rmsnormForward(L.ln2, L.rstd2, L.res1, w + lo.postNorm, n: n, c: c, eps: eps)
            linearForward(L.gate, L.ln2, weight(lo.wGate), nil, n: n, c: c, oc: f)
            linearForward(L.up, L.ln2, weight(lo.wUp), nil, n: n, c: c, oc: f)
            adapt(.gate, L.gate, L.ln2); adapt(.up, L.up, L.ln2)
            swigluForward(L.h, L.gate, L.up, count: n * f)
            if let next = output {
                // With shared storage `next` is L.xIn itself: nothing reads x_in after res1.
                linearForward(next, L.h, weight(lo.wDown), nil, n: n, c: f, oc: c)
                adapt(.down, next, L.h)
                addForward(next, next, L.res1, count: n * c)
            }
        }
    }

    /// Accumulates (+=) into `gradients` the gradient of a scalar loss whose gradient w.r.t. the last forward's
    /// logits is `dLogits` (R, V) (same rows as that forward returned). Tied embeddings receive both the
    /// embedding and the lm_head contributions.
    public func backward(dLogits: UnsafePointer<Float>) throws {
        guard let batch = lastBatch, let a = acts, lastForBackward, lastHead == nil else {
            throw ModelError.invalidInput("backward(dLogits:) without a preceding forward(…, forBackward: true)")
        }
        try checkLoRAForBackward()
        let n = batch.tokenCount, c = config.hiddenSize, v = config.vocabSize
        let dHead = baseGradient(layout.lmHead)
        // lm_head: logits = lnf · Wᵀ.
        a.dLn.update(repeating: 0, count: n * c)
        if let rows = lastRows {
            let r = rows.count
            a.dCompact.update(repeating: 0, count: r * c)
            linearBack(a.dCompact, dHead, nil, dLogits, a.compact, layout.lmHead, n: r, c: c, oc: v)
            for (j, i) in rows.enumerated() { accumulate(a.dLn + i * c, a.dCompact + j * c, count: c) }
        } else {
            linearBack(a.dLn, dHead, nil, dLogits, a.lnf, layout.lmHead, n: n, c: c, oc: v)
        }
        backwardLayers(batch, a)
    }

    /// Accumulates (+=) into `gradients` the gradient of a scalar loss whose gradient w.r.t. the last
    /// `forwardHead`'s logp is `dLogp` (R) (`lmHeadBackward`: the head's logits are recomputed chunk by chunk).
    /// Tied embeddings receive both the embedding and the lm_head contributions.
    public func backwardHead(dLogp: UnsafePointer<Float>) throws {
        guard let batch = lastBatch, let a = acts, lastForBackward, let head = lastHead else {
            throw ModelError.invalidInput("backwardHead without a preceding forwardHead(…, forBackward: true)")
        }
        try checkLoRAForBackward()
        let n = batch.tokenCount, c = config.hiddenSize, v = config.vocabSize
        let r = head.targets.count, chunk = headChunk(rows: r)
        let scratch = headScratch(floats: head.kept ? r * v : r * chunk)
        a.dLn.update(repeating: 0, count: n * c)
        let (input, dInput) = lastRows == nil ? (a.lnf, a.dLn) : (a.compact, a.dCompact)
        if lastRows != nil { a.dCompact.update(repeating: 0, count: r * c) }
        lmHeadBackward(dInput, baseGradient(layout.lmHead), scratch, dLogp, input, weight(layout.lmHead), head.lse, head.targets,
                       n: r, c: c, v: v, chunk: chunk, temperature: head.temperature, keep: head.kept)
        if let rows = lastRows {
            for (j, i) in rows.enumerated() { accumulate(a.dLn + i * c, a.dCompact + j * c, count: c) }
        }
        backwardLayers(batch, a)
    }

    /// Convenience for `backwardHead(dLogp:)` with an array.
    public func backwardHead(dLogp: [Float]) throws {
        guard dLogp.count == lastHead?.targets.count ?? -1 else {
            throw ModelError.invalidInput("backwardHead: \(dLogp.count) gradients for \(lastHead?.targets.count ?? 0) rows of the last forwardHead")
        }
        try dLogp.withUnsafeBufferPointer { try backwardHead(dLogp: $0.baseAddress!) }
    }

    /// The backward from a.dLn (N, C) = dLoss/dlnf through the final norm, every layer (recomputed first when
    /// the arena kept only layer inputs) and the embedding.
    private func backwardLayers(_ batch: PackedBatch, _ a: Activations) {
        let cfg = config
        let n = batch.tokenCount, c = cfg.hiddenSize, qd = cfg.qDim, kvd = cfg.kvDim, f = cfg.intermediateSize
        let nh = cfg.numAttentionHeads, nkv = cfg.numKeyValueHeads
        let w = parameters.pointer
        // The base's gradient slices; nil (skipped) with LoRA, where norms write theirs into a sink.
        let gw = baseGradient, opt = { (o: Int) in o < 0 ? nil : gw(o) }
        let sink = lora == nil ? nil : frozenNormSinkPointer()
        let norm = { (o: Int) in sink ?? gw(o)! }
        func adaptBack(_ li: Int, _ t: LoRATarget, _ dInp: UnsafeMutablePointer<Float>, _ dOut: UnsafePointer<Float>,
                       _ inp: UnsafePointer<Float>) {
            guard let ad = lora, let e = ad.entry(layer: li, target: t) else { return }
            let p = ad.parameters.pointer, dp = ad.gradients.pointer
            loraBackward(dInp, dp + e.a, dp + e.b, ad.scratchRows(n), dOut, inp,
                         ad.savedRows(e, tokens: n, keepAllLayers: !a.recomputes), p + e.a, p + e.b,
                         n: n, c: e.inFeatures, oc: e.outFeatures, r: ad.rank, scale: ad.scale)
        }
        a.dX.update(repeating: 0, count: n * c)
        rmsnormBackward(a.dX, norm(layout.finalNorm), a.dLn, a.xFinal, w + layout.finalNorm, a.rstdf, n: n, c: c)
        batch.tokens.withUnsafeBufferPointer { tok in
            batch.positions.withUnsafeBufferPointer { pos in
                for li in stride(from: layout.layers.count - 1, through: 0, by: -1) {
                    let lo = layout.layers[li], L = a.layers[li]
                    // Checkpointed: the same kernels on the same input give bitwise the forward's tensors.
                    if a.recomputes { layerForward(li, L, batch, cacheSlots: nil, output: nil) }
                    // x_out = res1 + down(h); dX holds dx_out and becomes dres1 in place.
                    a.dH.update(repeating: 0, count: n * f)
                    linearBack(a.dH, gw(lo.wDown), nil, a.dX, L.h, lo.wDown, n: n, c: f, oc: c)
                    adaptBack(li, .down, a.dH, a.dX, L.h)
                    a.dGate.update(repeating: 0, count: n * f)
                    a.dUp.update(repeating: 0, count: n * f)
                    swigluBackward(a.dGate, a.dUp, a.dH, L.gate, L.up, count: n * f)
                    a.dLn.update(repeating: 0, count: n * c)
                    linearBack(a.dLn, gw(lo.wGate), nil, a.dGate, L.ln2, lo.wGate, n: n, c: c, oc: f)
                    linearBack(a.dLn, gw(lo.wUp), nil, a.dUp, L.ln2, lo.wUp, n: n, c: c, oc: f)
                    adaptBack(li, .gate, a.dLn, a.dGate, L.ln2)
                    adaptBack(li, .up, a.dLn, a.dUp, L.ln2)
                    rmsnormBackward(a.dX, norm(lo.postNorm), a.dLn, L.res1, w + lo.postNorm, L.rstd2, n: n, c: c)
                    // res1 = x_in + o(att); dX becomes dx_in in place.
                    a.dAtt.update(repeating: 0, count: n * qd)
                    linearBack(a.dAtt, gw(lo.wo), opt(lo.bo), a.dX, L.att, lo.wo, n: n, c: qd, oc: c)
                    adaptBack(li, .o, a.dAtt, a.dX, L.att)
                    a.dQ.update(repeating: 0, count: n * qd)
                    a.dK.update(repeating: 0, count: n * kvd)
                    a.dV.update(repeating: 0, count: n * kvd)
                    attentionBackward(a.dQ, a.dK, a.dV, a.dAtt, L.q, L.k, L.v, L.att, L.lse, seqStarts: batch.seqStarts,
                                      nHeads: nh, nKVHeads: nkv, headDim: cfg.headDim)
                    ropeBackward(a.dQ, pos.baseAddress!, rope, n: n, nHeads: nh)
                    ropeBackward(a.dK, pos.baseAddress!, rope, n: n, nHeads: nkv)
                    a.dLn.update(repeating: 0, count: n * c)
                    linearBack(a.dLn, gw(lo.wq), opt(lo.bq), a.dQ, L.ln1, lo.wq, n: n, c: c, oc: qd)
                    linearBack(a.dLn, gw(lo.wk), opt(lo.bk), a.dK, L.ln1, lo.wk, n: n, c: c, oc: kvd)
                    linearBack(a.dLn, gw(lo.wv), opt(lo.bv), a.dV, L.ln1, lo.wv, n: n, c: c, oc: kvd)
                    adaptBack(li, .q, a.dLn, a.dQ, L.ln1)
                    adaptBack(li, .k, a.dLn, a.dK, L.ln1)
                    adaptBack(li, .v, a.dLn, a.dV, L.ln1)
                    rmsnormBackward(a.dX, norm(lo.inputNorm), a.dLn, L.xIn, w + lo.inputNorm, L.rstd1, n: n, c: c)
                }
                if let dEmb = gw(layout.embedding) { embeddingBackward(dEmb, a.dX, tok.baseAddress!, n: n, c: c) }
            }
        }
    }

    /// `linearBackward` against the weight at layout offset `offset` (F32, or BF16: then frozen, dW must be nil).
    private func linearBack(_ dInp: UnsafeMutablePointer<Float>?, _ dW: UnsafeMutablePointer<Float>?,
                            _ dB: UnsafeMutablePointer<Float>?, _ dOut: UnsafePointer<Float>, _ inp: UnsafePointer<Float>,
                            _ offset: Int, n: Int, c: Int, oc: Int) {
        switch weight(offset) {
        case .f32(let p): linearBackward(dInp, dW, dB, dOut, inp, p, n: n, c: c, oc: oc)
        case .bf16:
            precondition(dW == nil, "linearBack: BF16 base weights are frozen")
            linearBackwardInput(dInp, dB, dOut, weight(offset), n: n, c: c, oc: oc)
        }
    }

    /// The gradient slice of the base tensor at `offset`; nil with LoRA (the base is frozen: nothing computed).
    private func baseGradient(_ offset: Int) -> UnsafeMutablePointer<Float>? {
        lora == nil ? gradients.pointer + offset : nil
    }

    private func frozenNormSinkPointer() -> UnsafeMutablePointer<Float> {
        if frozenNormSink == nil { frozenNormSink = FloatBuffer(count: config.hiddenSize) }
        return frozenNormSink!.pointer
    }

    /// With LoRA the last forward must have run the adapters (their A·x rows are what the backward reads).
    private func checkLoRAForBackward() throws {
        if baseWeights == .bf16 && lora == nil {
            throw ModelError.invalidInput("backward with BF16 base weights needs LoRA adapters: BF16 weights are frozen (base_weights: bf16 is for LoRA and inference)")
        }
        if let ad = lora, !lastForwardHadAdapters || !ad.enabled {
            throw ModelError.invalidInput("backward with the LoRA adapters switched off in the forward: nothing is trainable")
        }
    }

    /// Decode/prefill overwrite the arena: a later backward must not use it.
    func lastForwardInvalidated() { lastForBackward = false; lastBatch = nil; lastHead = nil }

    /// Model FLOPs of a forward over `tokens` rows in sequences of the given lengths, with `logitRows` lm_head
    /// rows (matmuls + attention scores/values; elementwise ops ignored). Backward ≈ 2× this.
    public func forwardFlops(sequenceLengths: [Int], logitRows: Int? = nil) -> Double {
        let cfg = config
        let n = Double(sequenceLengths.reduce(0, +))
        let c = Double(cfg.hiddenSize), qd = Double(cfg.qDim), kvd = Double(cfg.kvDim), f = Double(cfg.intermediateSize)
        let perTokenLayer = 2 * c * (2 * qd + 2 * kvd) + 2 * 3 * c * f
        var attn = 0.0
        for t in sequenceLengths { attn += 2 * 2 * Double(t) * Double(t + 1) / 2 * qd }
        let head = 2 * Double(logitRows ?? Int(n)) * c * Double(cfg.vocabSize)
        return Double(cfg.numHiddenLayers) * (n * perTokenLayer + attn) + head
    }
}

/// Per-row results of `Transformer.forwardHead` (R each; empty when not asked for).
public struct LMHeadOutputs: Sendable {
    /// log softmax(z/T)[target] (0 where the target is −1).
    public var logp: [Float]
    /// logsumexp(z) − mean(z) − log V of the untempered logits.
    public var selfCertainty: [Float]
    /// Entropy of softmax(z), untempered.
    public var entropy: [Float]
}
