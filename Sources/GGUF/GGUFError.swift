/// Everything that can go wrong reading a GGUF file. The description names the file and, when there is one, the
/// metadata key or tensor, plus what was expected and what was found.
public struct GGUFError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        /// The file could not be opened / mapped.
        case io
        /// The file ends before a header field, a metadata value or a tensor info does (or before the data section).
        case truncated
        /// The first 4 bytes are not "GGUF".
        case badMagic
        /// Version other than 2 or 3 (v1 used 32-bit counts; a byte-swapped version means a big-endian file).
        case unsupportedVersion
        /// A metadata value type id outside 0...12.
        case badValueType
        /// A tensor/metadata/array count or a string length that cannot fit in the rest of the file.
        case badCount
        /// `general.alignment` not a nonzero power of two (or not an unsigned 32-bit integer).
        case badAlignment
        /// The same metadata key twice.
        case duplicateKey
        /// The same tensor name twice.
        case duplicateTensor
        /// More than 4 dimensions, a dimension that does not fit in Int, an element count that overflows, or a
        /// row length that is not a multiple of the type's block size.
        case badShape
        /// A tensor type id ggml does not define.
        case unknownTensorType
        /// A tensor offset that is not a multiple of the alignment.
        case misalignedOffset
        /// A tensor whose bytes extend past the end of the file, or overlap another tensor's.
        case dataPastEnd
        /// Two tensors' byte ranges overlap.
        case overlappingTensors
        /// No metadata value under that key.
        case missingKey
        /// The metadata value has another type than the accessor reads (or does not fit the requested type).
        case wrongValueType
        /// No tensor with that name.
        case missingTensor
        /// The tensor's type is known but not one rlif dequantizes.
        case unsupportedType
        /// Destination count differs from the tensor's element count (or the row range is out of bounds).
        case countMismatch
    }

    public var kind: Kind
    /// Path of the file concerned.
    public var file: String
    /// Metadata key concerned, when there is one.
    public var key: String?
    /// Tensor concerned, when there is one.
    public var tensor: String?
    /// Human-readable detail (expected vs actual).
    public var detail: String

    public init(_ kind: Kind, file: String, key: String? = nil, tensor: String? = nil, _ detail: String) {
        self.kind = kind; self.file = file; self.key = key; self.tensor = tensor; self.detail = detail
    }

    public var description: String {
        var s = "gguf \(file)"
        if let k = key { s += ", key '\(k)'" }
        if let t = tensor { s += ", tensor '\(t)'" }
        return s + ": \(detail)"
    }
}
