import Foundation
import GRPO
import Model
import SafeTensors

/// Resumable training state stored beside the model in a checkpoint.
public struct TrainerState: Codable, Sendable, Equatable {
    /// Training steps completed (the next step to run).
    public var completedSteps: Int
    /// Optimizer steps taken (the LR schedule position).
    public var optimizerSteps: Int
    public var adamStep: Int
    public var cursor: DataCursor
    /// Free-form notes stored with the state (rlif itself writes none: task seeds derive from (run seed, step,
    /// index), so a resumed run samples what an uninterrupted one would without a stored counter).
    public var extra: [String: String]

    public init(completedSteps: Int, optimizerSteps: Int, adamStep: Int, cursor: DataCursor, extra: [String: String] = [:]) {
        self.completedSteps = completedSteps
        self.optimizerSteps = optimizerSteps
        self.adamStep = adamStep
        self.cursor = cursor
        self.extra = extra
    }
}

/// Checkpoints as `<output>/checkpoint-<step>/` holding a Hugging Face model directory (`config.json`,
/// `model.safetensors`: load it with transformers unchanged) plus `optimizer.safetensors` (AdamW m and v, F32),
/// `trainer_state.json` and `train_config.json`. A LoRA run's checkpoint is a PEFT directory instead of the model
/// (`adapter_config.json` + `adapter_model.safetensors`, F32; `peft.PeftModel.from_pretrained(base, dir)` loads it,
/// `rlif merge` bakes it into a model) and its moments are the adapters' only; the frozen base is not copied.
///
/// A save streams every tensor from the live buffers to its file (`SafeTensorsWriter.stream`: no copy of the
/// weights or moments is made; F32 is written as it is and BF16/F16 go through one 512 KiB conversion buffer of
/// `streamChunkElements` values), into a temporary
/// directory `.checkpoint-<step>.tmp-<pid>` whose files are each fsynced; the directory is fsynced and renamed
/// into place, then `<output>/latest` (the directory name) is replaced atomically. A crash, OOM kill or I/O error
/// at any point leaves the previous checkpoint intact and `latest` naming it; the partial temporary directory is
/// removed by `prepare(output:)` at the next start. With `keep_checkpoints: N` only the newest N checkpoints are
/// kept (never the one `latest` names), like TRL's `save_total_limit`; 0 keeps all, TRL's default.
public enum Checkpointing {
    public static func directoryName(step: Int) -> String { String(format: "checkpoint-%06d", step) }

    /// The step of a `checkpoint-NNNNNN` directory name, nil for any other name.
    public static func step(ofDirectoryName name: String) -> Int? {
        guard name.hasPrefix("checkpoint-") else { return nil }
        let digits = name.dropFirst("checkpoint-".count)
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) else { return nil }
        return Int(digits)
    }

    /// True for what an interrupted save (or prune) leaves behind: `.checkpoint-*.tmp-*` directories and
    /// `.latest.tmp-*` files.
    static func isTemporary(_ name: String) -> Bool {
        (name.hasPrefix(".checkpoint-") && name.contains(".tmp-")) || name.hasPrefix(".latest.tmp-")
    }

    /// The process id recorded in a temporary name (`….tmp-<pid>` or `….tmp-<pid>-…`).
    static func ownerPID(ofTemporary name: String) -> Int32? {
        guard let r = name.range(of: ".tmp-", options: .backwards) else { return nil }
        return Int32(name[r.upperBound...].prefix { $0.isASCII && $0.isNumber })
    }

    /// Run start: creates `output` (a one-line error naming the path and the OS's reason if it cannot) and removes
    /// what interrupted saves left there (`.checkpoint-*.tmp-*`, `.latest.tmp-*`) — except those of another
    /// process that is still alive (a second run writing into the same directory). Returns the names removed.
    @discardableResult
    public static func prepare(output: URL) throws -> [String] {
        try FileSystemError.makeDirectory(output)
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: output.path) } catch {
            throw FileSystemError(error, operation: "list", path: output.path)
        }
        // A crash while re-saving a step, between moving the old checkpoint aside and moving the new one in, leaves
        // `latest` naming a missing directory and the old one as `.NAME.tmp-PID-replaced`: put it back first.
        if let l = try? String(contentsOf: output.appendingPathComponent("latest"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines), step(ofDirectoryName: l) != nil,
           !FileManager.default.fileExists(atPath: output.appendingPathComponent(l).path),
           let aside = names.first(where: { $0.hasPrefix(".\(l).tmp-") && $0.hasSuffix("-replaced") }) {
            try FileSystemError.rename(output.appendingPathComponent(aside), to: output.appendingPathComponent(l))
        }
        var removed: [String] = []
        for name in names.sorted() where isTemporary(name) && FileManager.default.fileExists(atPath: output.appendingPathComponent(name).path) {
            if let pid = ownerPID(ofTemporary: name), pid != getpid(), pid > 0, kill(pid, 0) == 0 { continue }
            let url = output.appendingPathComponent(name)
            do { try FileManager.default.removeItem(at: url) } catch {
                throw FileSystemError(error, operation: "remove stale partial checkpoint", path: url.path)
            }
            removed.append(name)
        }
        return removed
    }

    /// Writes `<output>/checkpoint-<state.completedSteps>/` and points `latest` at it (see the type). On failure
    /// the error says which checkpoint was not written and that `latest` is unchanged; nothing partial is left
    /// behind except on a crash (cleaned by `prepare`). `afterChunk` (tests) sees (file name, bytes written so
    /// far) after every streamed chunk and may throw to fail the save midway.
    @discardableResult
    public static func save(model: Transformer, optimizer: AdamW, state: TrainerState, config: TrainConfig,
                            output: URL, dtype: SafeTensorsDType = .f32,
                            afterChunk: ((String, Int) throws -> Void)? = nil) throws -> URL {
        try FileSystemError.makeDirectory(output)
        let name = directoryName(step: state.completedSteps)
        let final = output.appendingPathComponent(name)
        do {
            // Re-saving a step (e.g. after resuming from an earlier checkpoint) replaces it; `prepare` puts a moved-aside
            // old one back if we die between the two renames.
            try AtomicDirectory.write(final) { tmp in
                if let ad = model.lora {
                    try ad.savePEFT(to: tmp, baseModel: config.model)
                } else {
                    try model.save(to: tmp, dtype: dtype, afterChunk: afterChunk.map { f in { try f(SafeTensorsCheckpoint.singleFileName, $0) } })
                }
                let m = optimizer.m, v = optimizer.v   // the optimizer's own buffers (copy-on-write: nothing is copied)
                try m.withUnsafeBufferPointer { mb in
                    try v.withUnsafeBufferPointer { vb in
                        try SafeTensorsWriter.stream(
                            [.init(name: "exp_avg", shape: [mb.count], floats: mb), .init(name: "exp_avg_sq", shape: [vb.count], floats: vb)],
                            to: tmp.appendingPathComponent("optimizer.safetensors"),
                            metadata: ["step": "\(optimizer.stepCount)", "layout": momentLayout(model)],
                            afterChunk: afterChunk.map { f in { try f("optimizer.safetensors", $0) } })
                    }
                }
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                try AtomicFile.write(enc.encode(state), to: tmp.appendingPathComponent("trainer_state.json"))
                try AtomicFile.write(enc.encode(config), to: tmp.appendingPathComponent("train_config.json"))
            }
            try AtomicFile.write(Data(name.utf8), to: output.appendingPathComponent("latest"))
        } catch {
            let current = (try? latest(in: output))?.lastPathComponent
            throw CheckpointError(path: final.path,
                                  message: "not saved (\(current.map { "latest still names \($0)" } ?? "no earlier checkpoint")): \(error)")
        }
        if config.keepCheckpoints > 0 {
            do { try prune(output: output, keep: config.keepCheckpoints, latest: name) } catch {
                throw CheckpointError(path: output.path, message: "\(name) saved, but pruning old checkpoints failed: \(error)")
            }
        }
        return final
    }

    /// Removes all but the `keep` highest-step `checkpoint-*` directories in `output`, never `latest`. Each is
    /// first renamed to a temporary name, so an interrupted prune never leaves a half-deleted directory that looks
    /// like a checkpoint. Returns the names removed.
    @discardableResult
    public static func prune(output: URL, keep: Int, latest: String) throws -> [String] {
        let fm = FileManager.default
        let names: [String]
        do { names = try fm.contentsOfDirectory(atPath: output.path) } catch {
            throw FileSystemError(error, operation: "list", path: output.path)
        }
        let checkpoints = names.compactMap { n in step(ofDirectoryName: n).map { (n, $0) } }.sorted { $0.1 > $1.1 }
        var kept = 0, removed: [String] = []
        for (n, _) in checkpoints {
            if n == latest { continue }
            if kept + 1 < keep { kept += 1; continue }   // `latest` is always one of the `keep`
            let doomed = output.appendingPathComponent(".\(n).tmp-\(getpid())-pruned")
            try FileSystemError.rename(output.appendingPathComponent(n), to: doomed)
            do { try fm.removeItem(at: doomed) } catch { throw FileSystemError(error, operation: "remove", path: doomed.path) }
            removed.append(n)
        }
        return removed
    }

    /// The layout the flat AdamW moments follow: the adapters' with LoRA, every parameter's otherwise.
    static func momentLayout(_ model: Transformer) -> String { model.lora?.fingerprint ?? model.layout.fingerprint }

    /// The checkpoint `<output>/latest` names, or nil when there is none.
    public static func latest(in output: URL) throws -> URL? {
        let l = output.appendingPathComponent("latest")
        guard FileManager.default.fileExists(atPath: l.path) else { return nil }
        let name = try String(contentsOf: l, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let dir = output.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("trainer_state.json").path) else {
            throw CheckpointError(path: dir.path, message: "named by \(l.path) but has no trainer_state.json")
        }
        return dir
    }

    /// Loads the model weights, optimizer moments and trainer state of a checkpoint into existing objects.
    public static func restore(from dir: URL, model: Transformer, optimizer: AdamW) throws -> TrainerState {
        let state: TrainerState
        do {
            state = try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: dir.appendingPathComponent("trainer_state.json")))
        } catch {
            throw CheckpointError(path: dir.appendingPathComponent("trainer_state.json").path, message: "\(error)")
        }
        if let ad = model.lora {
            // The run's LoRA settings must be the checkpoint's (the moments are per adapter element).
            let saved = try LoRAAdapters.peftConfig(directory: dir)
            guard saved == ad.config else {
                throw CheckpointError(path: dir.appendingPathComponent(LoRAAdapters.configFileName).path,
                                      message: "adapters r \(saved.rank), alpha \(saved.alpha), targets \(saved.targetModules); this run's lora is r \(ad.rank), alpha \(ad.config.alpha), targets \(ad.config.targetModules)")
            }
            try ad.readPEFTWeights(directory: dir)
        } else {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent(LoRAAdapters.configFileName).path) {
                throw CheckpointError(path: dir.path, message: "holds LoRA adapters (adapter_config.json) but this run has no lora section: resume with the run's train_config.json settings, or `rlif merge` the adapters into a model first")
            }
            try model.loadWeights(directory: dir)
        }
        let opt = try SafeTensorsFile(contentsOf: dir.appendingPathComponent("optimizer.safetensors"))
        // The moments are flat, in the parameter layout of the build that wrote them: refuse another layout
        // rather than pair moments with the wrong tensors.
        let layout = momentLayout(model)
        guard opt.metadata["layout"] == layout else {
            throw CheckpointError(path: dir.appendingPathComponent("optimizer.safetensors").path,
                                  message: "AdamW moments were written for parameter layout \(opt.metadata["layout"] ?? "(none recorded: an older rlif)"), this model's layout is \(layout); the weights in model.safetensors load by name, but the moments cannot be mapped (to continue from these weights with a fresh optimizer: --set model=\(dir.path), without --resume)")
        }
        let optPath = dir.appendingPathComponent("optimizer.safetensors").path
        for t in ["exp_avg", "exp_avg_sq"] {
            guard let shape = opt.shape(of: t) else {
                throw CheckpointError(path: optPath, message: "no tensor '\(t)'")
            }
            guard shape.reduce(1, *) == optimizer.parameterCount, opt.dtype(of: t) == .f32 else {
                throw CheckpointError(path: optPath, message: "'\(t)' is \(opt.dtype(of: t)?.rawValue ?? "?") \(shape), the model needs F32 [\(optimizer.parameterCount)]")
            }
        }
        // Read straight into the optimizer's buffers: resuming costs no second copy of the moments.
        try optimizer.restore(stepCount: state.adamStep) { m, v in
            guard let mp = m.baseAddress, let vp = v.baseAddress else { return }
            try opt.readFloats("exp_avg", into: mp, count: m.count)
            try opt.readFloats("exp_avg_sq", into: vp, count: v.count)
        }
        return state
    }
}

public struct CheckpointError: Error, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "checkpoint \(path): \(message)" }
}
