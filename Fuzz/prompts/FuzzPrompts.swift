// libFuzzer target: a JSONL prompt file, read by PromptDataset(jsonLines:file:seed:) (the body of
// PromptDataset(contentsOf:seed:): JSONLines + the prompt/question/answer record), then shuffled into epoch order.
import Foundation
import Training

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPrompts(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    guard let d = try? PromptDataset(jsonLines: bytes, file: URL(fileURLWithPath: "/fuzz/prompts.jsonl"), seed: 1) else { return 0 }
    precondition(d.count > 0, "an accepted prompt file has no prompts")
    return 0
}
