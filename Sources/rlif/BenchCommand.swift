import Shared
import ArgumentParser
import Distributed
import Foundation
import Kernels
import GRPO
import Model
import SafeTensors
import Training

/// `rlif bench`: throughput of the CPU transformer on a named random-weight shape (release build please).
/// Prints one human line and one `BENCH key=value …` line per measurement (scripts/bench/run-model-bench.sh
/// parses the latter and compares with PyTorch).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark forward, forward+backward and batched KV-cache decode on a random model.")

    @Option(help: "Model shape: small (Qwen2, hidden 512, 8 layers, 8/2 heads, ffn 1536, vocab 16384, tied), qwen0.5b (hidden 896, 24 layers, 14/2 heads, ffn 4864, vocab 151936, untied) or tiny.")
    var shape = "small"
    @Option(help: "Sequences per training batch.") var sequences = 4
    @Option(help: "Tokens per training sequence.") var seqLen = 256
    @Option(help: "Concurrent sequences in the decode benchmark.") var decodeBatch = 16
    @Option(help: "Completions per prompt in the decode benchmark: 1 = independent sequences; G > 1 = batch/G prompts, each prefilled once and forked into G sequences that share its KV rows (as in rollouts).")
    var decodeGroup = 1
    @Option(help: "Prompt tokens per decode sequence.") var prefill = 64
    @Option(help: "Generated tokens per decode sequence.") var decodeTokens = 128
    @Option(help: "Timed repetitions (after one warm-up); the median is reported.") var iterations = 3
    @Option(help: "OpenBLAS / kernel threads.") var threads = 2
    @Flag(help: "Train with activation checkpointing (keep layer inputs, recompute each layer in backward).")
    var activationCheckpointing = false
    @Option(help: "Fused LM head: keep the training forward's logits for the backward up to this many MiB (0 = always recompute; default: the model's, 128).")
    var headKeepMib: Int?
    @Option(help: "How the weight matrices are held: f32, or bf16 (widened to F32 inside the kernels). Training a BF16 model needs --lora-rank.")
    var baseWeights: BaseWeights = .f32
    @Option(help: "Train LoRA adapters of this rank on all 7 projections (alpha = 2·rank) instead of every weight; 0 = full fine-tuning.")
    var loraRank = 0
    @Option(parsing: .upToNextOption, help: "Which parts to run (one or more): all (= forward train decode gemm adamw), forward, train, decode, gemm (decode-shape products: skinny kernel vs OpenBLAS), adamw (one optimizer step over the model's parameters: GB/s of state traffic against a same-run memory-bandwidth roof), roof (only the sgemm roof), checkpoint (resident memory of a streamed checkpoint save), allreduce (under mpirun).")
    var only: [BenchPart] = [.all]
    /// The same run's sgemm rate (GFLOP/s), set before any workload is timed.
    nonisolated(unsafe) static var roof = 0.0

    static func config(_ shape: String) throws -> ModelConfig {
        switch shape {
        case "small":
            return ModelConfig(architecture: .qwen2, hiddenSize: 512, intermediateSize: 1536, numHiddenLayers: 8,
                               numAttentionHeads: 8, numKeyValueHeads: 2, rmsNormEps: 1e-6, ropeTheta: 1_000_000,
                               vocabSize: 16384, maxPositionEmbeddings: 2048, tieWordEmbeddings: true)
        case "qwen0.5b":
            // Qwen2.5-0.5B's shape (untied 151,936-token head), for memory and speed of the real-size LM head.
            return ModelConfig(architecture: .qwen2, hiddenSize: 896, intermediateSize: 4864, numHiddenLayers: 24,
                               numAttentionHeads: 14, numKeyValueHeads: 2, rmsNormEps: 1e-6, ropeTheta: 1_000_000,
                               vocabSize: 151_936, maxPositionEmbeddings: 32768, tieWordEmbeddings: false)
        case "medium":
            // ~56M parameters (225 MB F32), untied: the checkpoint-memory check's "~200 MB model".
            return ModelConfig(architecture: .qwen2, hiddenSize: 640, intermediateSize: 1792, numHiddenLayers: 8,
                               numAttentionHeads: 10, numKeyValueHeads: 2, rmsNormEps: 1e-6, ropeTheta: 1_000_000,
                               vocabSize: 16384, maxPositionEmbeddings: 2048, tieWordEmbeddings: false)
        case "tiny":
            return ModelConfig(architecture: .qwen2, hiddenSize: 64, intermediateSize: 192, numHiddenLayers: 2,
                               numAttentionHeads: 4, numKeyValueHeads: 2, vocabSize: 512, maxPositionEmbeddings: 512,
                               tieWordEmbeddings: true)
        default:
            throw ValidationError("unknown shape '\(shape)' (small, medium, qwen0.5b, tiny)")
        }
    }

    /// Resident memory of `Checkpointing.save` (weights + AdamW moments, streamed) against the RSS before it, then
    /// of building the same weights' safetensors image in memory (the pre-streaming way), as a control that the
    /// measurement sees a model-sized copy. VmHWM is reset through /proc/self/clear_refs before each. One
    /// `BENCH part=checkpoint …` line (CheckpointSafetyTests parses it).
    func checkpointMemory(_ model: Transformer) throws {
        guard SystemMemory.resetPeak() else { throw ValidationError("cannot reset VmHWM (/proc/self/clear_refs not writable)") }
        let opt = try AdamW(parameterCount: model.layout.totalCount)
        // Non-zero moments on every page (a real run's are), via one step with pseudo-random gradients.
        let g = FloatBuffer(count: model.layout.totalCount)
        for i in 0..<g.count { g[i] = Float((i &* 2654435761) % 1000) * 1e-6 }
        let weights = FloatBuffer(count: model.layout.totalCount)
        opt.step(params: weights.pointer, grads: g.pointer)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rlif-bench-ckpt-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let before = SystemMemory.resident()!.current
        SystemMemory.resetPeak()
        let t0 = Date()
        try Checkpointing.save(model: model, optimizer: opt, state: TrainerState(completedSteps: 1, optimizerSteps: 1, adamStep: 1, cursor: DataCursor()),
                               config: TrainConfig(), output: dir)
        let seconds = Date().timeIntervalSince(t0)
        let peak = SystemMemory.resident()!.peak
        let before2 = SystemMemory.resident()!.current
        SystemMemory.resetPeak()
        var w = SafeTensorsWriter()
        for e in model.layout.entries {
            try w.add(name: e.name, shape: e.shape, floats: UnsafeBufferPointer(start: model.parameters.pointer + e.offset, count: e.count))
        }
        let image = w.serialized()
        let copyPeak = SystemMemory.resident()!.peak
        let files = ["model.safetensors", "optimizer.safetensors"].map { dir.appendingPathComponent(Checkpointing.directoryName(step: 1)).appendingPathComponent($0) }
        let bytes = try files.reduce(0) { $0 + (try FileManager.default.attributesOfItem(atPath: $1.path)[.size] as! Int) }
        print(String(format: "checkpoint %d parameters, %.0f MB written in %.2f s: RSS before %.1f MB, peak during save %.1f MB (+%.2f%%); in-memory image of the weights: peak %.1f MB (+%.1f MB)",
                     model.parameterCount, Double(bytes) / 1e6, seconds, Double(before) / 1e6, Double(peak) / 1e6,
                     100 * Double(peak - before) / Double(before), Double(copyPeak) / 1e6, Double(copyPeak - before2) / 1e6))
        print("BENCH part=checkpoint params=\(model.parameterCount) bytes=\(bytes) rss_before=\(before) peak_during=\(peak) copy_rss_before=\(before2) copy_peak=\(copyPeak) image_bytes=\(image.count) seconds=\(fmt(seconds))")
    }

    /// Process CPU seconds (user + system), to tell a slow run from a starved one on a shared machine.
    static func cpuSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    /// Runs `body` once to warm up, then `iterations` times; returns the median wall time and that run's CPU time.
    func median(_ body: () throws -> Void) rethrows -> (wall: Double, cpu: Double) {
        try body()  // warm-up (arena allocation, BLAS buffers)
        var runs: [(Double, Double)] = []
        for _ in 0..<max(1, iterations) {
            let c0 = Self.cpuSeconds()
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            runs.append((Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, Self.cpuSeconds() - c0))
        }
        runs.sort { $0.0 < $1.0 }
        return runs[runs.count / 2]
    }

    func run() throws {
        if only.contains(.allreduce) { return try allreduce() }
        Gemm.threads = threads
        Parallel.maxWorkers = threads
        let cfg = try Self.config(shape)
        if baseWeights == .bf16 && loraRank == 0 && wants(.train) {
            throw ValidationError("--base-weights bf16 trains only LoRA adapters: add --lora-rank (or --only forward/decode/gemm)")
        }
        let model = try Transformer(config: cfg, baseWeights: baseWeights)
        model.initializeRandom(seed: 1, std: 0.02)
        if only.contains(.checkpoint) { return try checkpointMemory(model) }
        if loraRank > 0 {
            let ad = try LoRAAdapters(config: LoRAConfig(rank: loraRank, alpha: Float(2 * loraRank)), model: cfg)
            ad.initialize(seed: 2)
            model.lora = ad
        }
        print("rlif bench: shape \(shape) (\(cfg.architecture.rawValue), \(model.parameterCount) parameters), threads \(threads), base weights \(baseWeights.rawValue) (\(fmt(Double(model.weightBytes) / 1e6)) MB)\(loraRank > 0 ? ", LoRA r \(loraRank)" : "")")
        let rssModel = SystemMemory.resident()?.current ?? 0
        // The roof: OpenBLAS sgemm in this same run (every GFLOP/s below is also printed as a percentage of it).
        let (g1024, g2048) = Self.sgemmRoof()
        let peak = max(g1024, g2048)
        Self.roof = peak
        print(String(format: "machine   sgemm roof %.1f GFLOP/s (1024³ %.1f, 2048³ %.1f) on %d thread(s)", peak, g1024, g2048, threads))
        print("BENCH impl=openblas name=sgemm_roof gflops=\(fmt(peak)) sgemm1024=\(fmt(g1024)) sgemm2048=\(fmt(g2048)) threads=\(threads)")
        let fma = Self.fmaPeak(threads: threads)
        if fma >= peak {
            print(String(format: "machine   FMA loop %.1f GFLOP/s (register-only; sgemm reaches %.0f%% of it)", fma, 100 * peak / fma))
        } else {
            print(String(format: "machine   FMA loop %.1f GFLOP/s is below sgemm: the cores were shared during it, not a roof", fma))
        }
        print("BENCH impl=rlif name=fma_loop gflops=\(fmt(fma)) threads=\(threads)")
        var rng = SystemRandomNumberGenerator()
        let v = cfg.vocabSize
        func randomTokens(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32.random(in: 0..<Int32(v), using: &rng) } }
        let batch = PackedBatch(sequences: (0..<sequences).map { _ in randomTokens(seqLen) })
        let n = batch.tokenCount
        let lengths = [Int](repeating: seqLen, count: sequences)
        let fwdFlops = model.forwardFlops(sequenceLengths: lengths)

        if wants(.forward) {
            let t = try median { _ = try model.forward(batch, forBackward: false) }
            report("forward", tokens: n, time: t, flops: fwdFlops,
                   extra: "batch=\(sequences)x\(seqLen)")
        }
        if wants(.train) {
            // Next-token cross-entropy (mean) through the fused LM head: −logp at T = 1, no (N, V) logits.
            var targets = [Int32](repeating: -1, count: n)
            for b in 0..<sequences { for i in 0..<(seqLen - 1) { targets[b * seqLen + i] = batch.tokens[b * seqLen + i + 1] } }
            let count = Float(targets.filter { $0 >= 0 }.count)
            let dLogp = targets.map { $0 >= 0 ? -1 / count : 0 }
            model.activationCheckpointing = activationCheckpointing
            if let mib = headKeepMib { model.headKeepLogitsBytes = mib << 20 }
            let t = try median {
                _ = try model.forwardHead(batch, targets: targets)
                model.zeroGradients()
                try model.backwardHead(dLogp: dLogp)
            }
            let arenaMB = Double(model.activationFloats(tokens: n, rows: n, forBackward: true)) * 4 / 1e6
            let kept = n * v * 4 <= model.headKeepLogitsBytes
            let headMB = Double(n * (kept ? v : lmHeadChunkColumns(rows: n, vocab: v))) * 4 / 1e6
            // FLOPs: forward + input gradients + weight gradients (3×); a LoRA backward has no base weight
            // gradients (2×; the adapters' own products are ignored).
            report("fwd+bwd", tokens: n, time: t, flops: (loraRank > 0 ? 2 : 3) * fwdFlops,
                   extra: "batch=\(sequences)x\(seqLen) checkpointing=\(activationCheckpointing) activations_mb=\(Int(arenaMB)) head_scratch_mb=\(Int(headMB)) head_logits_kept=\(kept) base_weights=\(baseWeights.rawValue) lora_rank=\(loraRank)")
        }
        if wants(.decode) {
            let b = decodeBatch, group = max(1, decodeGroup)
            guard b % group == 0 else { throw ValidationError("--decode-batch must be a multiple of --decode-group") }
            model.reserveDecoding(slots: b + (group > 1 ? b / group : 0), maxSequenceLength: prefill + decodeTokens)
            let prompts = (0..<(b / group)).map { _ in randomTokens(prefill) }
            var logits = [Float](repeating: 0, count: b * v)
            var prefillTime = 0.0, decodeTime = 0.0, decodeCPU = 0.0
            let total = try median {
                let t0 = DispatchTime.now().uptimeNanoseconds
                var slots = try model.prefill(prompts: prompts, lastLogits: &logits)
                if group > 1 {
                    // Each prompt's G sequences read its rows by reference; the prompt slots stay pinned.
                    let roots = slots
                    slots = try roots.flatMap { try model.fork($0, count: group) }
                    model.release(roots)
                }
                let t1 = DispatchTime.now().uptimeNanoseconds
                let c1 = Self.cpuSeconds()
                var toks = [Int32](repeating: 0, count: b)
                for _ in 0..<decodeTokens {
                    // Greedy argmax per row (sampling cost is the sampler's; argmax keeps the loop honest).
                    for r in 0..<b {
                        var best = 0
                        logits.withUnsafeBufferPointer { p in
                            let row = p.baseAddress! + r * v
                            for j in 1..<v where row[j] > row[best] { best = j }
                        }
                        toks[r] = Int32(best)
                    }
                    try model.decode(tokens: toks, slots: slots, logits: &logits)
                }
                let t2 = DispatchTime.now().uptimeNanoseconds
                decodeCPU = Self.cpuSeconds() - c1
                model.release(slots)
                prefillTime = Double(t1 - t0) / 1e9
                decodeTime = Double(t2 - t1) / 1e9
            }
            // Decode FLOPs: per step B tokens through every layer + lm_head, attention over the growing cache.
            var decFlops = 0.0
            for s in 0..<decodeTokens {
                decFlops += Double(b) * model.forwardFlops(sequenceLengths: [1]) - Double(b) * 2 * 2 * Double(cfg.qDim) * Double(cfg.numHiddenLayers)
                decFlops += Double(b) * 2 * 2 * Double(prefill + s + 1) * Double(cfg.qDim) * Double(cfg.numHiddenLayers)
            }
            let suffix = group > 1 ? "_g\(group)" : ""
            report("decode" + suffix, tokens: b * decodeTokens, time: (decodeTime, decodeCPU), flops: decFlops,
                   extra: "batch=\(b) group=\(group) prefill=\(prefill) new=\(decodeTokens) prefill_s=\(fmt(prefillTime))")
            report("generate" + suffix, tokens: b * decodeTokens, time: total, flops: nil,
                   extra: "batch=\(b) group=\(group) prefill+decode end-to-end")
        }
        if wants(.gemm) {
            try gemmBench(cfg, peak: peak)
        }
        if wants(.adamw) {
            try adamwBench(parameterCount: model.layout.totalCount)
        }
        // Resident memory: after building the model (weights + runtime) and the run's high-water mark.
        if let r = SystemMemory.resident() {
            print(String(format: "memory    resident after the model %.0f MB, peak %.0f MB (weights %.0f MB, %@)",
                         Double(rssModel) / 1e6, Double(r.peak) / 1e6, Double(model.weightBytes) / 1e6, baseWeights.rawValue))
            print("BENCH impl=rlif name=memory rss_model_mb=\(fmt(Double(rssModel) / 1e6)) peak_mb=\(fmt(Double(r.peak) / 1e6)) weights_mb=\(fmt(Double(model.weightBytes) / 1e6)) base_weights=\(baseWeights.rawValue)")
        }
    }

    /// The decode step's products at M = decode batch: `Gemm.skinnyTransB` (what decode uses) against
    /// OpenBLAS sgemm (`Gemm.blasSgemm`) on the same operands, both with `threads` threads.
    func gemmBench(_ cfg: ModelConfig, peak: Double) throws {
        let m = decodeBatch, c = cfg.hiddenSize, f = cfg.intermediateSize
        let shapes: [(String, Int, Int)] = [("qkv", cfg.qDim + 2 * cfg.kvDim, c), ("o_proj", c, cfg.qDim),
                                             ("gate_up", 2 * f, c), ("down", c, f), ("lm_head", cfg.vocabSize, c)]
        var rng = SystemRandomNumberGenerator()
        for (name, n, k) in shapes {
            let a = FloatBuffer(count: m * k), w = FloatBuffer(count: n * k)
            let out = FloatBuffer(count: m * n), ref = FloatBuffer(count: m * n)
            for i in 0..<(m * k) { a.pointer[i] = Float.random(in: -1...1, using: &rng) }
            for i in 0..<(n * k) { w.pointer[i] = Float.random(in: -1...1, using: &rng) }
            let flops = 2.0 * Double(m * n * k)
            // Enough repetitions for ~50 ms per timing.
            let reps = max(3, Int(5e9 / flops) / 10)
            let skinny = median {
                for _ in 0..<reps { Gemm.skinnyTransB(out.pointer, ldc: n, a.pointer, lda: k, w.pointer, ldw: k, m: m, n: n, k: k) }
            }
            let blas = median {
                for _ in 0..<reps {
                    Gemm.blasSgemm(ref.pointer, a.pointer, w.pointer, m: m, n: n, k: k, transB: true)
                }
            }
            var maxDiff: Float = 0
            for i in 0..<(m * n) { maxDiff = max(maxDiff, abs(out.pointer[i] - ref.pointer[i])) }
            let gs = flops * Double(reps) / skinny.wall / 1e9, gb = flops * Double(reps) / blas.wall / 1e9
            // The same product with W as BF16 (half the weight bytes streamed).
            let wb = BF16Buffer(count: n * k)
            for i in 0..<(n * k) { wb.pointer[i] = BFloat16.from(w.pointer[i]) }
            let skinnyBF16 = median {
                for _ in 0..<reps { Gemm.skinnyTransB(out.pointer, ldc: n, a.pointer, lda: k, bf16: wb.pointer, ldw: k, m: m, n: n, k: k) }
            }
            let g16 = flops * Double(reps) / skinnyBF16.wall / 1e9
            print(String(format: "gemm      %-8@ M=%d N=%d K=%d: skinny %6.1f GFLOP/s (%.0f%% of the sgemm roof), BF16 weights %6.1f (%.0f%%), OpenBLAS %6.1f, ratio %.2f (max |diff| %.1e)",
                         name, m, n, k, gs, 100 * gs / peak, g16, 100 * g16 / peak, gb, gs / gb, maxDiff))
            print("BENCH impl=rlif name=gemm_\(name) gflops=\(fmt(gs)) bf16_gflops=\(fmt(g16)) blas_gflops=\(fmt(gb)) m=\(m) n=\(n) k=\(k)")
        }
    }

    /// One AdamW step over `parameterCount` parameters (the shape's model), single-threaded and on `threads`
    /// workers, as GB/s of state traffic: 16 bytes read (w, g, m, v) + 12 written (w, m, v) = 28 bytes per
    /// parameter, every byte counted once (the written lines were just read, so there is no write-allocate
    /// traffic on top). The roof, measured in the same run over buffers of the same size (`parameterCount`
    /// floats each, far beyond the caches), on `threads` workers through `Parallel.run`, best of 3:
    /// - axpy `a[i] += s·b[i]`: 8 bytes read + 4 written per element, the same read-modify-write pattern as
    ///   AdamW (the roof the AdamW figure is a percentage of);
    /// - copy `a[i] = b[i]` (memcpy per slice): 4 + 4 bytes counted, as STREAM counts it (the store's
    ///   write-allocate read is not counted, so copy reads low; printed for reference).
    func adamwBench(parameterCount n: Int) throws {
        let opt = try AdamW(parameterCount: n, config: AdamWConfig(lr: 3e-6))
        let w = FloatBuffer(count: n), g = FloatBuffer(count: n)
        for i in 0..<n { w.pointer[i] = Float((i &* 2654435761) % 1000) * 1e-3; g.pointer[i] = Float(i % 997) * 1e-6 }
        let bytes = 28.0 * Double(n)
        let single = median { opt.step(params: w.pointer, grads: g.pointer, workers: 1) }
        let multi = median { opt.step(params: w.pointer, grads: g.pointer, workers: threads) }
        // Same-run bandwidth roof over two more n-float buffers (g and w stand in for b and a).
        let a = UInt(bitPattern: w.pointer), b = UInt(bitPattern: g.pointer)
        let workers = max(1, threads)
        let axpy = Self.bestSeconds(of: 3) {
            Parallel.run(workers: workers) { i in
                let pa = UnsafeMutablePointer<Float>(bitPattern: a)!, pb = UnsafePointer<Float>(bitPattern: b)!
                let s = SIMD8<Float>(repeating: 1e-9)
                var j = n * i / workers
                let hi = n * (i + 1) / workers
                while j + 8 <= hi {
                    let x = UnsafeRawPointer(pa + j).loadUnaligned(as: SIMD8<Float>.self)
                    let y = UnsafeRawPointer(pb + j).loadUnaligned(as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(pa + j).storeBytes(of: x + s * y, as: SIMD8<Float>.self)
                    j += 8
                }
                while j < hi { pa[j] += 1e-9 * pb[j]; j += 1 }
            }
        }
        let copy = Self.bestSeconds(of: 3) {
            Parallel.run(workers: workers) { i in
                let lo = n * i / workers, hi = n * (i + 1) / workers
                memcpy(UnsafeMutableRawPointer(bitPattern: a)! + 4 * lo, UnsafeRawPointer(bitPattern: b)! + 4 * lo, 4 * (hi - lo))
            }
        }
        let gbAxpy = 12 * Double(n) / axpy / 1e9, gbCopy = 8 * Double(n) / copy / 1e9
        let gb1 = bytes / single.wall / 1e9, gbN = bytes / multi.wall / 1e9
        print(String(format: "adamw     %d parameters (%.0f MB of state traffic per step: 16 B read + 12 B written each): 1 thread %.2f ms = %.1f GB/s, %d threads %.2f ms = %.1f GB/s (%.0f%% of the bandwidth roof); roof: axpy a += s·b %.1f GB/s (12 B/element), copy %.1f GB/s (8 B/element)",
                     n, bytes / 1e6, single.wall * 1e3, gb1, threads, multi.wall * 1e3, gbN, 100 * gbN / gbAxpy, gbAxpy, gbCopy))
        print("BENCH impl=rlif name=adamw params=\(n) seconds=\(fmt(multi.wall)) gbs=\(fmt(gbN)) gbs_1thread=\(fmt(gb1)) seconds_1thread=\(fmt(single.wall)) roof_axpy_gbs=\(fmt(gbAxpy)) roof_copy_gbs=\(fmt(gbCopy)) pct_of_bandwidth=\(fmt(100 * gbN / gbAxpy)) threads=\(threads) cpu_util=\(fmt(multi.cpu / multi.wall))")
    }

    /// Single-precision FMA throughput of `threads` cores from a register-only loop: 12 independent SIMD8 FMA
    /// chains per thread (Zen 3: 2 FMA pipes × 4-cycle latency = 8 chains needed; the emitted loop is 24
    /// `vfmadd231ps ymm` per iteration, checked with objdump). Each worker times itself (no thread wake-up in the
    /// window); best of 3 runs of ~0.3 s. Contention from other processes only lowers it, so it is reported as a
    /// roof only when it is at least the same run's sgemm rate.
    static func fmaPeak(threads: Int) -> Double {
        let iterations = 100_000_000
        let sink = FloatBuffer(count: 8 * max(1, threads))
        let times = FloatBuffer(count: max(1, threads))
        let p = UInt(bitPattern: sink.pointer), tp = UInt(bitPattern: times.pointer)
        var best = 0.0
        for _ in 0..<3 {
            Parallel.run(workers: threads) { wi in
                let t0 = DispatchTime.now().uptimeNanoseconds
                let b = SIMD8<Float>(repeating: 0.999_999), cst = SIMD8<Float>(repeating: 1e-7)
                var x0 = SIMD8<Float>(repeating: 1), x1 = x0 + 1, x2 = x0 + 2, x3 = x0 + 3, x4 = x0 + 4, x5 = x0 + 5
                var x6 = x0 + 6, x7 = x0 + 7, x8 = x0 + 8, x9 = x0 + 9, x10 = x0 + 10, x11 = x0 + 11
                for _ in 0..<iterations {
                    x0 = x0.addingProduct(x0, b); x1 = x1.addingProduct(x1, b); x2 = x2.addingProduct(x2, b)
                    x3 = x3.addingProduct(x3, b); x4 = x4.addingProduct(x4, b); x5 = x5.addingProduct(x5, b)
                    x6 = x6.addingProduct(x6, b); x7 = x7.addingProduct(x7, b); x8 = x8.addingProduct(x8, b)
                    x9 = x9.addingProduct(x9, b); x10 = x10.addingProduct(x10, b); x11 = x11.addingProduct(x11, cst)
                }
                let s = x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11
                UnsafeMutableRawPointer(bitPattern: p)!.storeBytes(of: s, toByteOffset: 32 * wi, as: SIMD8<Float>.self)
                let secs = Float(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                UnsafeMutableRawPointer(bitPattern: tp)!.storeBytes(of: secs, toByteOffset: 4 * wi, as: Float.self)
            }
            // Sum of each worker's own rate: the cores' combined throughput.
            var rate = 0.0
            for w in 0..<max(1, threads) { rate += Double(iterations) * 12 * 16 / Double(times.pointer[w]) / 1e9 }
            best = max(best, rate)
        }
        return best
    }

    /// OpenBLAS sgemm at 1024³ and 2048³ (best of 3 each, `threads` threads): the roof every other figure is a
    /// percentage of, measured in the same run so that host-to-host and minute-to-minute drift cancels.
    static func sgemmRoof() -> (g1024: Double, g2048: Double) {
        func rate(_ n: Int, reps: Int) -> Double {
            let a = FloatBuffer(count: n * n), b = FloatBuffer(count: n * n), c = FloatBuffer(count: n * n)
            for i in 0..<(n * n) { a.pointer[i] = Float(i % 17) * 0.01; b.pointer[i] = Float(i % 13) * 0.01 }
            let s = bestSeconds(of: reps) { Gemm.blasSgemm(c.pointer, a.pointer, b.pointer, m: n, n: n, k: n) }
            return 2 * Double(n * n * n) / s / 1e9
        }
        return (rate(1024, reps: 3), rate(2048, reps: 3))
    }

    /// `body` once to warm up, then the fastest of `reps` timed runs, in seconds: for roofs, which contention
    /// from other processes can only lower (the workloads report medians instead, `median`).
    static func bestSeconds(of reps: Int, _ body: () -> Void) -> Double {
        body()
        var t = Double.infinity
        for _ in 0..<max(1, reps) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            t = min(t, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return t
    }

    /// Whether `part` runs: named in --only, or one of `all`'s workloads.
    func wants(_ part: BenchPart) -> Bool {
        only.contains(part) || (only.contains(.all) && BenchPart.inAll.contains(part))
    }

    func fmt(_ x: Double) -> String { String(format: "%.4g", x) }

    /// Prints the human line and the BENCH line. `cpu_util` = CPU seconds / wall seconds (≈ threads when the
    /// machine is otherwise idle); much lower means other processes took the cores and the numbers are low.
    func report(_ name: String, tokens: Int, time: (wall: Double, cpu: Double), flops: Double?, extra: String) {
        let seconds = time.wall
        let tps = Double(tokens) / seconds
        let util = time.cpu / seconds
        var human = "\(name.padding(toLength: 11, withPad: " ", startingAt: 0)) \(String(format: "%9.1f", tps)) tokens/s"
        var machine = "BENCH impl=rlif name=\(name) tokens_per_s=\(fmt(tps)) seconds=\(fmt(seconds)) cpu_util=\(fmt(util))"
        if let f = flops {
            let g = f / seconds / 1e9
            human += String(format: "  %6.1f GFLOP/s", g)
            machine += " gflops=\(fmt(g))"
            if Self.roof > 0 {
                human += String(format: " (%.0f%% of sgemm)", 100 * g / Self.roof)
                machine += " pct_of_sgemm=\(fmt(100 * g / Self.roof))"
            }
        }
        print(human + "  (\(extra), \(fmt(seconds)) s, cpu util \(String(format: "%.2f", util)))")
        print(machine + " " + extra.replacingOccurrences(of: " ", with: "_"))
    }
}

extension Bench {
    /// `--only allreduce` under mpirun: the gradient reduction of a data-parallel learner, buffer by buffer.
    func allreduce() throws {
        guard let world = try DataParallelLaunch.world(), world.size > 1 else {
            throw ValidationError("--only allreduce needs 2+ MPI ranks: mpirun -np 2 rlif bench --only allreduce")
        }
        defer { world.finalize() }
        let sizes = [1, 4, 16, 64, 256].map { $0 << 18 }  // 1, 4, 16, 64, 256 MiB of floats
        let rows = try AllreduceBench.run(world: world, floats: sizes, iterations: iterations)
        guard world.rank == 0 else { return }
        print("rlif bench: MPI_Allreduce (sum, in place, \(Int.gradientBucketMiB) MiB buckets) over \(world.size) ranks; \(world.libraryVersion)")
        for r in rows {
            let mib = (r.floats * 4) >> 20
            print(String(format: "allreduce %4d MiB  %8.2f ms  algbw %6.2f GB/s  busbw %6.2f GB/s", mib, r.seconds * 1000,
                         r.algorithmBandwidth / 1e9, r.busBandwidth(ranks: world.size) / 1e9))
            print("BENCH impl=mpi name=allreduce mib=\(mib) ranks=\(world.size) seconds=\(fmt(r.seconds)) algbw_gbs=\(fmt(r.algorithmBandwidth / 1e9)) busbw_gbs=\(fmt(r.busBandwidth(ranks: world.size) / 1e9))")
        }
    }
}

/// The parts of `rlif bench --only`.
enum BenchPart: String, ExpressibleByArgument, CaseIterable {
    case all, forward, train, decode, gemm, adamw, roof, checkpoint, allreduce
    /// What `all` runs (roof runs always; checkpoint and allreduce only when named).
    static let inAll: Set<BenchPart> = [.forward, .train, .decode, .gemm, .adamw]
}

private extension Int {
    static var gradientBucketMiB: Int { (MPIWorld.gradientBucket * 4) >> 20 }
}
