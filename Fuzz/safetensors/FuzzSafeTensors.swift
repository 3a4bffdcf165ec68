// libFuzzer target: a safetensors file (8-byte header length, JSON header, data section) parsed by
// SafeTensorsFile(data:url:), the parser behind SafeTensorsFile(contentsOf:); every tensor it accepts is then read
// the ways the loaders read them (floats / ints / raw bytes), which must stay inside the data section.
import Foundation
import SafeTensors

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    guard let f = try? SafeTensorsFile(data: bytes, url: URL(fileURLWithPath: "<fuzz>")) else { return 0 }
    for name in f.tensorNames {
        // Each may refuse (e.g. ints of a float tensor) but must not read outside the file.
        _ = try? f.floats(name)
        _ = try? f.ints(name)
        _ = try? f.rawBytes(name)
    }
    return 0
}
