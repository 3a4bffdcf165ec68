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
    /// The next task id / sampling seed counter, so a resumed run samples what an uninterrupted one would.
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
/// `trainer_state.json` and `train_config.yaml`. Each is written into a temporary directory that is renamed into
/// place, then `<output>/latest` (the directory name) is replaced atomically: a crash mid-write leaves the previous
/// checkpoint intact and `latest` pointing at it.
public enum Checkpointing {
    public static func directoryName(step: Int) -> String { String(format: "checkpoint-%06d", step) }

    public static func save(model: Transformer, optimizer: AdamW, state: TrainerState, config: TrainConfig,
                            output: URL, dtype: SafeTensorsDType = .f32) throws -> URL {
        let fm = FileManager.default
        try fm.createDirectory(at: output, withIntermediateDirectories: true)
        let name = directoryName(step: state.completedSteps)
        let final = output.appendingPathComponent(name)
        let tmp = output.appendingPathComponent(".\(name).tmp-\(ProcessInfo.processInfo.processIdentifier)")
        try? fm.removeItem(at: tmp)
        try model.save(to: tmp, dtype: dtype)
        var w = SafeTensorsWriter()
        let adam = optimizer.state()
        try adam.m.withUnsafeBufferPointer { try w.add(name: "exp_avg", shape: [adam.m.count], floats: $0, as: .f32) }
        try adam.v.withUnsafeBufferPointer { try w.add(name: "exp_avg_sq", shape: [adam.v.count], floats: $0, as: .f32) }
        try w.write(to: tmp.appendingPathComponent("optimizer.safetensors"),
                    metadata: ["step": "\(adam.stepCount)", "layout": model.layout.fingerprint])
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(state).write(to: tmp.appendingPathComponent("trainer_state.json"), options: .atomic)
        try enc.encode(config).write(to: tmp.appendingPathComponent("train_config.json"), options: .atomic)
        if fm.fileExists(atPath: final.path) { try fm.removeItem(at: final) }
        try fm.moveItem(at: tmp, to: final)
        try Data(name.utf8).write(to: output.appendingPathComponent("latest"), options: .atomic)
        return final
    }

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
        try model.loadWeights(directory: dir)
        let opt = try SafeTensorsFile(contentsOf: dir.appendingPathComponent("optimizer.safetensors"))
        // The moments are flat, in the parameter layout of the build that wrote them: refuse another layout
        // rather than pair moments with the wrong tensors.
        let layout = model.layout.fingerprint
        guard opt.metadata["layout"] == layout else {
            throw CheckpointError(path: dir.appendingPathComponent("optimizer.safetensors").path,
                                  message: "AdamW moments were written for parameter layout \(opt.metadata["layout"] ?? "(none recorded: an older rlif)"), this model's layout is \(layout); the weights in model.safetensors load by name, but the moments cannot be mapped (to continue from these weights with a fresh optimizer: --set model=\(dir.path), without --resume)")
        }
        let m = try opt.floats("exp_avg"), v = try opt.floats("exp_avg_sq")
        guard m.count == optimizer.parameterCount, v.count == optimizer.parameterCount else {
            throw CheckpointError(path: dir.appendingPathComponent("optimizer.safetensors").path,
                                  message: "moments have \(m.count)/\(v.count) entries, the model \(optimizer.parameterCount)")
        }
        try optimizer.restore(AdamW.State(stepCount: state.adamStep, m: m, v: v))
        return state
    }
}

public struct CheckpointError: Error, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "checkpoint \(path): \(message)" }
}
