// libFuzzer target: one ZeroMQ frame from a peer, decoded by WireCodec.decode (protobuf-c's unpack of the
// Envelope, then every body's validation) exactly as the learner and the actor decode each frame they receive.
// Invariant beyond "no crash": an accepted envelope re-encodes and re-decodes to itself.
import Wire

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: data, count: size)
    guard let e = try? WireCodec.decode(raw) else { return 0 }
    let again: Envelope
    do { again = try WireCodec.decode(WireCodec.encode(e)) } catch {
        fatalError("an accepted envelope (\(e.body.fieldName)) does not decode after re-encoding: \(error)")
    }
    precondition(again == e, "an accepted envelope (\(e.body.fieldName)) changes through encode/decode")
    return 0
}
