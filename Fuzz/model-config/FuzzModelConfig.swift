// libFuzzer target: a model's config.json, decoded and validated by ModelConfig.decode(json:file:) (the body of
// ModelConfig.load), then laid out as every model built from it is (ParameterLayout: offsets of every tensor).
import Foundation
import Model

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzModelConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let c = try? ModelConfig.decode(json: Data(bytes: data, count: size), file: "<fuzz>") else { return 0 }
    _ = ParameterLayout(config: c)
    return 0
}
