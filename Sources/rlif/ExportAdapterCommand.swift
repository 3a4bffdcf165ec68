import ArgumentParser
import Foundation
import Model

/// `rlif export-adapter`: a LoRA run's checkpoint (a PEFT directory with F32 adapters and the local path it
/// trained from) → a PEFT directory to publish: BF16 by default, the base model's hub name in adapter_config.json
/// and, optionally, the base weights' SHA-256 in the safetensors metadata (`LoRAAdapters.exportPEFT`).
struct ExportAdapter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-adapter",
        abstract: "Write a LoRA checkpoint's adapters as a PEFT directory to publish (BF16, base model named).",
        discussion: """
            Example:
              rlif export-adapter --adapter runs/intuitor/checkpoint-000012 --out results/intuitor-lora \\
                --base-model Qwen/Qwen2.5-Coder-0.5B-Instruct --base-sha256 1d96…
            peft.PeftModel.from_pretrained(base, "results/intuitor-lora") loads the result onto the base model.
            """)

    @Option(help: "Adapter directory (adapter_config.json + adapter_model.safetensors), e.g. a LoRA checkpoint.")
    var adapter: String
    @Option(help: "Output directory (must not exist).") var out: String
    @Option(help: "Base model name written as base_model_name_or_path (e.g. a Hugging Face hub name).")
    var baseModel: String
    @Option(help: "SHA-256 of the base weights the adapters were trained on, kept in the safetensors metadata.")
    var baseSha256: String?
    @Option(help: "Stored dtype of the adapters: f32, bf16 or f16.") var dtype: WeightFileDType = .bf16

    func validate() throws {
        if let h = baseSha256, h.count != 64 || !h.allSatisfy(\.isHexDigit) {
            throw ValidationError("--base-sha256 must be 64 hex digits, got '\(h)'")
        }
    }

    func run() throws {
        var metadata: [String: String] = ["base_model": baseModel]
        if let h = baseSha256 { metadata["base_sha256"] = h.lowercased() }
        let e = try LoRAAdapters.exportPEFT(adapter: URL(fileURLWithPath: adapter), output: URL(fileURLWithPath: out),
                                            dtype: dtype.safeTensors, baseModel: baseModel, metadata: metadata)
        print("exported \(e.tensors) tensors (\(e.parameters) parameters, \(dtype.rawValue)) from \(adapter) to \(out): \(e.bytes) bytes")
    }
}
