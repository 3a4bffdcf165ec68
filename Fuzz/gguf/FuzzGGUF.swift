// libFuzzer target: a GGUF file (header, metadata, tensor infos, data) parsed by GGUFFile(bytes:), the parser
// behind GGUFFile(contentsOf:); then what `--model x.gguf` does with it: the ModelConfig and HF names
// (GGUFCheckpoint) and its parameter layout, the tokenizer from its metadata (Tokenizer(gguf:)), and dequantizing each (small) tensor.
import Foundation
import GGUF
import Model
import Tokenizer

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGGUF(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = [UInt8](UnsafeBufferPointer(start: data, count: size))
    guard let f = try? GGUFFile(bytes: bytes, url: URL(fileURLWithPath: "<fuzz>")) else { return 0 }
    if let ckpt = try? GGUFCheckpoint(file: f) { _ = ParameterLayout(config: ckpt.config) }
    if let t = try? Tokenizer(gguf: f) {
        _ = t.decode(t.encode("Hello, world! 123"))
    }
    for t in f.tensors where t.elementCount <= 1 << 16 {
        _ = try? f.floats(t.name)
    }
    return 0
}
