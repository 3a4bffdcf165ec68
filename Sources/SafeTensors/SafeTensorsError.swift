/// Everything that can go wrong reading or writing safetensors. The description names the file and, when there
/// is one, the tensor, plus what was expected and what was found.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        /// The file could not be opened / read / written.
        case io
        /// Fewer than 8 bytes, or the 8-byte header length is larger than the file (or absurdly large).
        case badHeaderLength
        /// The header is not a JSON object of the expected form.
        case badJSON
        /// A tensor entry lacks `dtype`/`shape`/`data_offsets` or has values of the wrong type.
        case badEntry
        /// `dtype` string not known.
        case unsupportedDType
        /// Negative dimension, or the element count overflows.
        case badShape
        /// `data_offsets` reversed, outside the data, overlapping, leaving a gap, or not matching shape × dtype.
        case badOffsets
        /// The data section ends before the last tensor does.
        case truncated
        /// Bytes after the last tensor.
        case trailingBytes
        /// No tensor with that name.
        case missingTensor
        /// The accessor does not handle the tensor's dtype (e.g. `floats` on I64).
        case wrongDType
        /// Destination count differs from the tensor's element count (or writer data vs shape).
        case countMismatch
        /// Writer: the same tensor name added twice.
        case duplicateName
        /// Sharded checkpoints: `model.safetensors.index.json` malformed or inconsistent with the shards.
        case badIndex
    }

    public var kind: Kind
    /// Path of the file concerned.
    public var file: String
    /// Tensor concerned, when there is one.
    public var tensor: String?
    /// Human-readable detail (expected vs actual).
    public var detail: String

    public init(_ kind: Kind, file: String, tensor: String? = nil, _ detail: String) {
        self.kind = kind; self.file = file; self.tensor = tensor; self.detail = detail
    }

    public var description: String {
        var s = "safetensors \(file)"
        if let t = tensor { s += ", tensor '\(t)'" }
        return s + ": \(detail)"
    }
}
