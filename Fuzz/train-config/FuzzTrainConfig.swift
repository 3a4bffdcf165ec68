// libFuzzer target: a YAML run config, parsed by TrainConfig.load(yaml:source:) (Yams, unknown-key checks,
// decoding, range validation), the body of TrainConfig.load(contentsOf:), which reads the file as UTF-8 first.
import Training

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTrainConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let text = String(validating: UnsafeBufferPointer(start: data, count: size), as: UTF8.self) else { return 0 }
    _ = try? TrainConfig.load(yaml: text, source: "<fuzz>")
    return 0
}
