import Foundation
import GRPO
import Model
import SafeTensors
import Testing
import TestSupport
@testable import Training

/// Checkpoints never lose the previous one: a save that fails midway leaves `latest` loadable, partial
/// temporaries are removed at the next start, `keep_checkpoints` prunes, file-system errors are one line, and a
/// save costs no model-sized copy in memory.
@Suite struct CheckpointSafetyTests {
    /// A 2-layer random model and an AdamW whose moments are non-zero (one step with pseudo-random gradients).
    static func modelAndOptimizer(seed: UInt64) throws -> (Transformer, AdamW) {
        let cfg = ModelConfig(architecture: .qwen2, hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 2,
                              numAttentionHeads: 4, numKeyValueHeads: 2, vocabSize: 300, maxPositionEmbeddings: 128,
                              tieWordEmbeddings: false)
        let m = try Transformer(config: cfg)
        m.initializeRandom(seed: seed, biasStd: 0.01)
        let opt = try AdamW(parameterCount: m.layout.totalCount)
        let g = noise(m.layout.totalCount, seed: seed)
        g.withUnsafeBufferPointer { opt.step(params: m.parameters.pointer, grads: $0.baseAddress!) }
        return (m, opt)
    }

    /// Deterministic values in [-1, 1) that differ from element to element.
    static func noise(_ n: Int, seed: UInt64) -> [Float] {
        (0..<n).map { i in Float((i &* 2_654_435_761 &+ Int(seed) &* 97) % 2001 - 1000) * 1e-3 }
    }

    static func state(_ step: Int) -> TrainerState {
        TrainerState(completedSteps: step, optimizerSteps: step, adamStep: 1, cursor: DataCursor(epoch: 0, index: step))
    }

    static func temporaries(in dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
    }

    struct Injected: Error {}

    @Test(arguments: ["model.safetensors", "optimizer.safetensors"])
    func saveFailingMidwayLeavesLatestLoadable(_ failingFile: String) throws {
        let out = try Fixtures.temporaryDirectory("rlif-ckpt-fail")
        defer { try? FileManager.default.removeItem(at: out) }
        let (model, opt) = try Self.modelAndOptimizer(seed: 3)
        try Checkpointing.save(model: model, optimizer: opt, state: Self.state(1), config: TrainConfig(), output: out)
        let savedWeights = Array(model.parameters.buffer), savedM = opt.m, savedV = opt.v
        // Train on: the next save would write different numbers.
        let g = Self.noise(model.layout.totalCount, seed: 9)
        g.withUnsafeBufferPointer { opt.step(params: model.parameters.pointer, grads: $0.baseAddress!) }
        #expect(Array(model.parameters.buffer) != savedWeights)
        var sawMidway = false
        do {
            try Checkpointing.save(model: model, optimizer: opt, state: Self.state(2), config: TrainConfig(), output: out) { file, bytes in
                // Past the header and at least one chunk into the file: a genuinely half-written file.
                if file == failingFile && bytes > 1 << 16 { sawMidway = true; throw Injected() }
            }
            Issue.record("the save did not fail")
        } catch let e as CheckpointError {
            #expect(e.description.contains("latest still names checkpoint-000001"), "\(e)")
            #expect(!e.description.contains("\n"))
        }
        #expect(sawMidway)
        #expect(try Checkpointing.latest(in: out)?.lastPathComponent == "checkpoint-000001")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("checkpoint-000002").path))
        let left = try Self.temporaries(in: out)
        #expect(left.isEmpty, "partial files left: \(left)")
        // The previous checkpoint restores bit for bit.
        let (fresh, freshOpt) = try Self.modelAndOptimizer(seed: 77)
        let s = try Checkpointing.restore(from: try #require(try Checkpointing.latest(in: out)), model: fresh, optimizer: freshOpt)
        #expect(s == Self.state(1))
        #expect(Array(fresh.parameters.buffer) == savedWeights)
        let sameMoments = freshOpt.m == savedM && freshOpt.v == savedV
        #expect(sameMoments)
    }

    /// What a crash mid-save leaves (a `.checkpoint-*.tmp-PID` directory with partial files, a `.latest.tmp-…`)
    /// is removed at the next start — unless a live process other than this one owns it.
    @Test func staleTemporariesAreRemovedAtStart() throws {
        let out = try Fixtures.temporaryDirectory("rlif-ckpt-stale")
        defer { try? FileManager.default.removeItem(at: out) }
        let (model, opt) = try Self.modelAndOptimizer(seed: 4)
        try Checkpointing.save(model: model, optimizer: opt, state: Self.state(1), config: TrainConfig(), output: out)
        let fm = FileManager.default
        let dead = ".checkpoint-000002.tmp-2147483000"   // no such process (above any pid_max)
        let mine = ".checkpoint-000003.tmp-\(getpid())"  // a previous incarnation with this pid
        let pruned = ".checkpoint-000000.tmp-2147483000-pruned"
        for d in [dead, mine, pruned] {
            try fm.createDirectory(at: out.appendingPathComponent(d), withIntermediateDirectories: true)
            try Data(repeating: 1, count: 1000).write(to: out.appendingPathComponent(d).appendingPathComponent(".model.safetensors.tmp-1-2"))
        }
        try Data("checkpoint-0000".utf8).write(to: out.appendingPathComponent(".latest.tmp-2147483000-5"))
        let live = ".checkpoint-000004.tmp-1"   // pid 1 is alive: another run's save in progress, left alone
        try fm.createDirectory(at: out.appendingPathComponent(live), withIntermediateDirectories: true)
        let removed = try Checkpointing.prepare(output: out)
        #expect(Set(removed) == [dead, mine, pruned, ".latest.tmp-2147483000-5"])
        #expect(try Self.temporaries(in: out) == [live])
        #expect(try Checkpointing.latest(in: out)?.lastPathComponent == "checkpoint-000001")
        // A crash while re-saving checkpoint-000001 after it was moved aside: the old one is put back.
        try fm.moveItem(at: out.appendingPathComponent("checkpoint-000001"), to: out.appendingPathComponent(".checkpoint-000001.tmp-2147483000-replaced"))
        try fm.createDirectory(at: out.appendingPathComponent(".checkpoint-000001.tmp-2147483000"), withIntermediateDirectories: true)
        #expect(try Checkpointing.prepare(output: out) == [".checkpoint-000001.tmp-2147483000"])
        let back = try #require(try Checkpointing.latest(in: out))
        let (fresh, freshOpt) = try Self.modelAndOptimizer(seed: 8)
        _ = try Checkpointing.restore(from: back, model: fresh, optimizer: freshOpt)
        #expect(Array(fresh.parameters.buffer) == Array(model.parameters.buffer))
        // A single-process run starts by doing the same.
        try fm.createDirectory(at: out.appendingPathComponent(dead), withIntermediateDirectories: true)
        let tmp = try Fixtures.temporaryDirectory("rlif-ckpt-stale-run")
        defer { try? fm.removeItem(at: tmp) }
        let run = try ResumeTests.makeRun(ResumeTests.config(model: try ResumeTests.makeModel(in: tmp), output: out))
        run.stopAfterSteps = 0
        try run.run()
        #expect(!fm.fileExists(atPath: out.appendingPathComponent(dead).path))
    }

    @Test func keepCheckpointsPrunesTheOldestButNeverLatest() throws {
        let out = try Fixtures.temporaryDirectory("rlif-ckpt-keep")
        defer { try? FileManager.default.removeItem(at: out) }
        let (model, opt) = try Self.modelAndOptimizer(seed: 5)
        func checkpoints() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: out.path).filter { Checkpointing.step(ofDirectoryName: $0) != nil }.sorted()
        }
        var keepAll = TrainConfig()
        #expect(keepAll.keepCheckpoints == 0, "default keeps every checkpoint, like TRL's save_total_limit=None")
        for s in 1...3 { try Checkpointing.save(model: model, optimizer: opt, state: Self.state(s), config: keepAll, output: out) }
        #expect(try checkpoints() == ["checkpoint-000001", "checkpoint-000002", "checkpoint-000003"])
        var keep2 = TrainConfig()
        keep2.keepCheckpoints = 2
        for s in 4...5 { try Checkpointing.save(model: model, optimizer: opt, state: Self.state(s), config: keep2, output: out) }
        #expect(try checkpoints() == ["checkpoint-000004", "checkpoint-000005"])
        #expect(try Self.temporaries(in: out).isEmpty)
        // After a resume from an earlier step, `latest` is not the highest step: it is still kept.
        keepAll.keepCheckpoints = 1
        try Checkpointing.save(model: model, optimizer: opt, state: Self.state(3), config: keepAll, output: out)
        #expect(try checkpoints() == ["checkpoint-000003"])
        #expect(try Checkpointing.latest(in: out)?.lastPathComponent == "checkpoint-000003")
        // Re-saving an existing step replaces it.
        try Checkpointing.save(model: model, optimizer: opt, state: Self.state(3), config: keepAll, output: out)
        #expect(try checkpoints() == ["checkpoint-000003"])
        #expect(try Self.temporaries(in: out).isEmpty)
        let bad = #expect(throws: ConfigError.self) { try TrainConfig().overriding(["keep_checkpoints=-1"]) }
        #expect(bad?.key == "keep_checkpoints")
    }

    /// An output path that cannot be a directory: every layer answers with one line naming the path and the OS's
    /// reason, never a Foundation error dump.
    @Test func fileSystemErrorsAreOneLine() throws {
        let tmp = try Fixtures.temporaryDirectory("rlif-ckpt-fs")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let file = tmp.appendingPathComponent("a-file")
        try Data("x".utf8).write(to: file)
        let out = file.appendingPathComponent("run")
        let (model, opt) = try Self.modelAndOptimizer(seed: 6)
        func check(_ body: () throws -> Void) {
            do { try body(); Issue.record("no error") } catch {
                let d = "\(error)"
                #expect(d.contains(out.path) || d.contains(file.path), "\(d)")
                #expect(d.contains("\(file.path) exists and is not a directory") || d.contains("Not a directory"), "\(d)")
                #expect(!d.contains("NSCocoaErrorDomain") && !d.contains("\n") && !d.contains("Code="), "\(d)")
            }
        }
        check { try Checkpointing.prepare(output: out) }
        check { try Checkpointing.save(model: model, optimizer: opt, state: Self.state(1), config: TrainConfig(), output: out) }
        check { _ = try MetricsLog(url: out.appendingPathComponent("metrics.jsonl"), truncate: true) }
        check { try model.save(to: out) }
        check { try FileSystemError.makeDirectory(file) }
        // Foundation's own errors reduce to the same form.
        do { try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true) } catch {
            let e = FileSystemError(error, operation: "create directory", path: out.path)
            #expect(e.description == "cannot create directory \(out.path): \(file.path) exists and is not a directory"
                    || e.description == "cannot create directory \(out.path): Not a directory", "\(e)")
        }
    }

    /// A real crash: `rlif train --single-process` is SIGKILLed while it writes its second checkpoint (a 24M-parameter
    /// model, ~290 MB of weights and moments, so the save takes long enough to be caught). `latest` still names the
    /// first checkpoint, which restores; the partial `.checkpoint-000002.tmp-PID` is there until the next start,
    /// which removes it and finishes the run from the first checkpoint.
    @Test func killedMidSaveKeepsLatestAndTheNextStartCleansUp() throws {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("rlif")
        try #require(FileManager.default.isExecutableFile(atPath: exe.path), "the rlif executable must be built next to the tests (\(exe.path))")
        let fm = FileManager.default
        let tmp = try Fixtures.temporaryDirectory("rlif-ckpt-kill")
        defer { try? fm.removeItem(at: tmp) }
        var cfg = try ModelConfig.load(from: Fixtures.repoRoot.appendingPathComponent("scripts/default-model/config.json"))
        cfg.hiddenSize = 512; cfg.intermediateSize = 1536; cfg.numHiddenLayers = 8
        cfg.numAttentionHeads = 8; cfg.numKeyValueHeads = 2; cfg.headDim = 64
        let m = try Transformer(config: cfg)
        m.initializeRandom(seed: 21)
        let modelDir = tmp.appendingPathComponent("model")
        try m.save(to: modelDir)
        try fm.copyItem(at: ResumeTests.defaultDir.appendingPathComponent("model/tokenizer.json"),
                        to: modelDir.appendingPathComponent("tokenizer.json"))
        let out = tmp.appendingPathComponent("run")
        func start(resume: Bool) throws -> Process {
            let p = Process()
            p.executableURL = exe
            p.arguments = ["train", "--single-process", "--output-dir", out.path, "--log-level", "warning",
                           "--set", "model=\(modelDir.path)", "--set", "steps=2", "--set", "checkpoint_every=1",
                           "--set", "prompts_per_step=2", "--set", "group_size=2", "--set", "max_new_tokens=4",
                           "--set", "eval_every=0"] + (resume ? ["--resume"] : [])
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }
        let first = try start(resume: false)
        var partial: String? = nil
        let deadline = Date().addingTimeInterval(300)
        while partial == nil && first.isRunning && Date() < deadline {
            let names = (try? fm.contentsOfDirectory(atPath: out.path)) ?? []
            if names.contains("checkpoint-000001"), let p = names.first(where: { $0.hasPrefix(".checkpoint-000002.tmp-") }) {
                kill(first.processIdentifier, SIGKILL)
                partial = p
            } else {
                usleep(2000)
            }
        }
        first.waitUntilExit()
        let caught = try #require(partial, "the run ended (status \(first.terminationStatus)) before it was caught saving checkpoint 2")
        #expect(first.terminationReason == .uncaughtSignal)
        #expect(fm.fileExists(atPath: out.appendingPathComponent(caught).path))
        let latest = try #require(try Checkpointing.latest(in: out))
        #expect(latest.lastPathComponent == "checkpoint-000001")
        let fresh = try Transformer(config: cfg)
        let opt = try AdamW(parameterCount: fresh.layout.totalCount)
        #expect(try Checkpointing.restore(from: latest, model: fresh, optimizer: opt).completedSteps == 1)
        let second = try start(resume: true)
        second.waitUntilExit()
        #expect(second.terminationStatus == 0)
        #expect(try Checkpointing.latest(in: out)?.lastPathComponent == "checkpoint-000002")
        let left = try Self.temporaries(in: out)
        #expect(left.isEmpty, "left: \(left)")
    }

    /// The resident memory of a streamed save of a ~56M-parameter model (225 MB weights + 450 MB moments), in a
    /// child process (`rlif bench --only checkpoint --shape medium`) so that other tests running in parallel in
    /// this process cannot disturb the high-water mark; VmHWM is reset through /proc/self/clear_refs right before
    /// the save. The same child builds the old in-memory safetensors image of the weights as a control: that must
    /// show the copy, or the measurement would be blind.
    @Test(.enabled(if: FileManager.default.isWritableFile(atPath: "/proc/self/clear_refs"), "needs /proc/self/clear_refs"))
    func streamedSaveAddsNoModelCopyToResidentMemory() throws {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("rlif")
        try #require(FileManager.default.isExecutableFile(atPath: exe.path), "the rlif executable must be built next to the tests (\(exe.path))")
        let p = Process()
        p.executableURL = exe
        p.arguments = ["bench", "--only", "checkpoint", "--shape", "medium", "--threads", "1"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text)")
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("BENCH part=checkpoint") }, "\(text)")
        var kv: [String: Double] = [:]
        for f in line.split(separator: " ").dropFirst() {
            let parts = f.split(separator: "=")
            if parts.count == 2 { kv[String(parts[0])] = Double(parts[1]) }
        }
        let params = try #require(kv["params"]), before = try #require(kv["rss_before"]), peak = try #require(kv["peak_during"])
        let copyBefore = try #require(kv["copy_rss_before"]), copyPeak = try #require(kv["copy_peak"])
        print("streamed save: \(text.split(separator: "\n").first { $0.hasPrefix("checkpoint") } ?? "")")
        #expect(params > 50e6)
        #expect(before >= 3 * 4 * params, "weights and moments must be resident before the save (RSS \(before))")
        #expect(peak <= before * 1.05, "peak during save \(peak) > 105% of \(before)")
        #expect(copyPeak - copyBefore >= 4 * params * 0.9, "the control (an in-memory image of the weights) did not show in VmHWM: the measurement is blind")
    }
}
