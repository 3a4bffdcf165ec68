import CTensorBoardProto
import Foundation

/// One `tensorflow.Event` of the subset rlif writes and reads (Protos/tensorboard/event.proto).
public struct TensorBoardEvent: Equatable, Sendable {
    public var wallTime: Double
    public var step: Int64
    /// Set on the first event of a file ("brain.Event:2").
    public var fileVersion: String?
    /// (tag, simple_value) pairs of the event's Summary, in file order.
    public var scalars: [(tag: String, value: Float)]

    public init(wallTime: Double, step: Int64 = 0, fileVersion: String? = nil, scalars: [(tag: String, value: Float)] = []) {
        self.wallTime = wallTime; self.step = step; self.fileVersion = fileVersion; self.scalars = scalars
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.wallTime == b.wallTime && a.step == b.step && a.fileVersion == b.fileVersion
            && a.scalars.map(\.tag) == b.scalars.map(\.tag) && a.scalars.map(\.value) == b.scalars.map(\.value)
    }

    /// The serialized protobuf (protobuf-c pack).
    public func serialized() -> [UInt8] {
        var ev = Tensorflow__Event()
        tensorflow__event__init(&ev)
        ev.wall_time = wallTime
        ev.step = step
        // protobuf-c keeps C pointers: the strings and values must outlive the pack call below.
        var cStrings: [UnsafeMutablePointer<CChar>] = []
        defer { cStrings.forEach { free($0) } }
        func dup(_ s: String) -> UnsafeMutablePointer<CChar> { let p = strdup(s)!; cStrings.append(p); return p }
        var summary = Tensorflow__Summary()
        tensorflow__summary__init(&summary)
        let values = UnsafeMutablePointer<Tensorflow__Summary__Value>.allocate(capacity: max(scalars.count, 1))
        let valuePtrs = UnsafeMutablePointer<UnsafeMutablePointer<Tensorflow__Summary__Value>?>.allocate(capacity: max(scalars.count, 1))
        defer { values.deallocate(); valuePtrs.deallocate() }
        if let v = fileVersion {
            ev.what_case = TENSORFLOW__EVENT__WHAT_FILE_VERSION
            ev.file_version = dup(v)
        } else {
            for (i, s) in scalars.enumerated() {
                tensorflow__summary__value__init(values + i)
                values[i].tag = dup(s.tag)
                values[i].value_case = TENSORFLOW__SUMMARY__VALUE__VALUE_SIMPLE_VALUE
                values[i].simple_value = s.value
                valuePtrs[i] = values + i
            }
            summary.n_value = scalars.count
            summary.value = valuePtrs
        }
        return withUnsafeMutablePointer(to: &summary) { sp in
            if fileVersion == nil {
                ev.what_case = TENSORFLOW__EVENT__WHAT_SUMMARY
                ev.summary = sp
            }
            var out = [UInt8](repeating: 0, count: tensorflow__event__get_packed_size(&ev))
            _ = out.withUnsafeMutableBufferPointer { tensorflow__event__pack(&ev, $0.baseAddress) }
            return out
        }
    }

    /// Decodes one serialized Event (protobuf-c unpack); nil when the bytes are not one.
    public init?(serialized bytes: [UInt8]) {
        guard let p = bytes.withUnsafeBufferPointer({ tensorflow__event__unpack(nil, $0.count, $0.baseAddress) }) else { return nil }
        defer { tensorflow__event__free_unpacked(p, nil) }
        let ev = p.pointee
        wallTime = ev.wall_time
        step = ev.step
        fileVersion = ev.what_case == TENSORFLOW__EVENT__WHAT_FILE_VERSION ? String(cString: ev.file_version) : nil
        scalars = []
        if ev.what_case == TENSORFLOW__EVENT__WHAT_SUMMARY, let s = ev.summary {
            for i in 0..<s.pointee.n_value {
                guard let v = s.pointee.value[i] else { continue }
                if v.pointee.value_case == TENSORFLOW__SUMMARY__VALUE__VALUE_SIMPLE_VALUE {
                    scalars.append((String(cString: v.pointee.tag), v.pointee.simple_value))
                }
            }
        }
    }
}

/// TensorFlow's record framing: uint64 length (LE), masked CRC-32C of those 8 bytes (uint32 LE), the data, masked
/// CRC-32C of the data (uint32 LE).
public enum TFRecord {
    public static func frame(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 16)
        let len = withUnsafeBytes(of: UInt64(data.count).littleEndian, Array.init)
        out += len
        out += withUnsafeBytes(of: CRC32C.masked(CRC32C.checksum(len)).littleEndian, Array.init)
        out += data
        out += withUnsafeBytes(of: CRC32C.masked(CRC32C.checksum(data)).littleEndian, Array.init)
        return out
    }

    public struct FormatError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The records of a file's bytes, each CRC checked. A torn last record (a writer killed mid-write) is an error
    /// naming its offset, like every other damage.
    public static func records(_ bytes: [UInt8]) throws -> [[UInt8]] {
        let (records, error) = intactRecords(bytes)
        if let error { throw error }
        return records
    }

    /// The records before the first damaged one, and that damage (nil when the whole file is intact).
    public static func intactRecords(_ bytes: [UInt8]) -> ([[UInt8]], FormatError?) {
        do { return (try scan(bytes), nil) } catch let e as Partial { return (e.records, e.error) } catch { return ([], nil) }
    }

    private struct Partial: Error { var records: [[UInt8]]; var error: FormatError }

    private static func scan(_ bytes: [UInt8]) throws -> [[UInt8]] {
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * $1) } }
        var out: [[UInt8]] = []
        var at = 0
        while at < bytes.count {
            guard at + 12 <= bytes.count else { throw Partial(records: out, error: FormatError(description: "record at offset \(at): truncated header")) }
            let lenBytes = Array(bytes[at..<at + 8])
            let len = (0..<8).reduce(UInt64(0)) { $0 | UInt64(lenBytes[$1]) << (8 * UInt64($1)) }
            guard u32(at + 8) == CRC32C.masked(CRC32C.checksum(lenBytes)) else {
                throw Partial(records: out, error: FormatError(description: "record at offset \(at): length CRC mismatch"))
            }
            guard len <= UInt64(bytes.count - at - 16) else { throw Partial(records: out, error: FormatError(description: "record at offset \(at): truncated data (\(len) bytes)")) }
            let data = Array(bytes[at + 12..<at + 12 + Int(len)])
            guard u32(at + 12 + Int(len)) == CRC32C.masked(CRC32C.checksum(data)) else {
                throw Partial(records: out, error: FormatError(description: "record at offset \(at): data CRC mismatch"))
            }
            out.append(data)
            at += 16 + Int(len)
        }
        return out
    }

    /// The Events of an event file.
    public static func events(in url: URL) throws -> [TensorBoardEvent] {
        guard let d = FileManager.default.contents(atPath: url.path) else {
            throw FormatError(description: "cannot read \(url.path)")
        }
        return try records(Array(d)).enumerated().map { i, r in
            guard let e = TensorBoardEvent(serialized: r) else {
                throw FormatError(description: "\(url.path): record \(i) is not a tensorflow.Event")
            }
            return e
        }
    }
}
