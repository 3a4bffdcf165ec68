// libFuzzer target: a tokenizer.json, loaded by Tokenizer(json:file:config:) (the parser behind
// Tokenizer(contentsOf:)), then used: a fixed text is encoded and decoded through whatever pipeline it declares.
import Tokenizer

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = [UInt8](UnsafeBufferPointer(start: data, count: size))
    guard let t = try? Tokenizer(json: bytes, file: "<fuzz>", config: .init()) else { return 0 }
    let ids = t.encode("Hello, world! 12 + 30 = 42.\n  Ünïcödé ✓", addSpecialTokens: true)
    _ = t.decode(ids)
    _ = t.decode(ids, skipSpecialTokens: true)
    return 0
}
