import ArgumentParser
import Foundation
import Model

/// `rlif merge`: bake LoRA adapters (a PEFT directory, e.g. a LoRA run's checkpoint) into the base model and
/// write a plain Hugging Face model directory (`LoRAMerge.merge`).
struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge LoRA adapters (PEFT directory) into a base model; writes a Hugging Face model directory.",
        discussion: """
            Example:
              rlif merge --base models/qwen2.5-0.5b --adapter runs/lora/checkpoint-000100 --out models/qwen-merged
            """)

    @Option(help: "Base model directory (config.json + model.safetensors).") var base: String
    @Option(help: "Adapter directory (adapter_config.json + adapter_model.safetensors).") var adapter: String
    @Option(help: "Output directory (must not exist).") var out: String
    @Option(help: "Weight dtype of the output: f32, bf16 or f16.") var dtype: WeightFileDType = .f32

    func run() throws {
        let m = try LoRAMerge.merge(base: URL(fileURLWithPath: base), adapter: URL(fileURLWithPath: adapter),
                                    output: URL(fileURLWithPath: out), dtype: dtype.safeTensors)
        print("merged \(adapter) into \(base): \(m.parameterCount) parameters written to \(out)")
    }
}
