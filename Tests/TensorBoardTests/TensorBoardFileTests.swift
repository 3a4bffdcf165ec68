import Foundation
import SafeTensors
import TensorBoard
import Testing
import TestSupport

/// TensorBoard event files: CRC-32C, TFRecord framing and the Event protobuf against tensorboard's own writer
/// (Tests/Fixtures/tensorboard from scripts/ref/tensorboard_check.py --write-fixture).
@Suite struct TensorBoardFileTests {
    struct Spec: Decodable {
        struct Event: Decodable { var wall_time: Double; var step: Int; var scalars: [String: Double] }
        var file_wall_time: Double
        var events: [Event]
    }

    static func spec() throws -> Spec {
        try JSONDecoder().decode(Spec.self, from: Data(contentsOf: Fixtures.url("tensorboard/events.json")))
    }

    @Test func crc32cKnownAnswers() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        // 32 zero bytes: the iSCSI test vector (RFC 3720 B.4).
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
    }

    /// rlif's writer, given the fixture's events and wall times, writes byte for byte what tensorboard's
    /// RecordWriter + protos wrote: framing, both masked CRCs, field order, float32 values, the 0.0 oneof value.
    @Test func bytesEqualTensorBoardsOwnWriter() throws {
        let s = try Self.spec()
        let d = try Fixtures.temporaryDirectory("rlif-tb")
        defer { try? FileManager.default.removeItem(at: d) }
        let w = try TensorBoardWriter(directory: d.appendingPathComponent("tb"), wallTime: s.file_wall_time)
        for e in s.events { try w.add(scalars: e.scalars, step: e.step, wallTime: e.wall_time) }
        #expect(w.url.lastPathComponent.hasPrefix("events.out.tfevents.1764000000."))
        let ours = try Data(contentsOf: w.url)
        let theirs = try Data(contentsOf: Fixtures.url("tensorboard/events.out.tfevents.fixture"))
        #expect(ours.count == theirs.count)
        let firstDiff = zip(ours, theirs).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(firstDiff == nil, "first differing byte at offset \(firstDiff ?? -1)")
    }

    /// The reader (framing + CRC checks + protobuf-c unpack) decodes tensorboard's file to the fixture's values.
    @Test func readsTensorBoardsFile() throws {
        let s = try Self.spec()
        let events = try TFRecord.events(in: Fixtures.url("tensorboard/events.out.tfevents.fixture"))
        #expect(events.count == s.events.count + 1)
        #expect(events.first?.fileVersion == "brain.Event:2")
        #expect(events.first?.wallTime == s.file_wall_time)
        for (got, want) in zip(events.dropFirst(), s.events) {
            #expect(got.wallTime == want.wall_time)
            #expect(got.step == Int64(want.step))
            #expect(got.scalars.map(\.tag) == want.scalars.keys.sorted())
            #expect(got.scalars.map(\.value) == want.scalars.sorted { $0.key < $1.key }.map { Float($0.value) })
        }
    }

    @Test func damageIsFoundAndNamed() throws {
        var bytes = Array(try Data(contentsOf: Fixtures.url("tensorboard/events.out.tfevents.fixture")))
        #expect(try TFRecord.records(bytes).count == 5)
        var flipped = bytes
        flipped[40] ^= 1
        #expect(throws: TFRecord.FormatError.self) { try TFRecord.records(flipped) }
        bytes.removeLast(3)
        do { _ = try TFRecord.records(bytes); Issue.record("a torn last record was accepted") }
        catch { #expect("\(error)".contains("truncated")) }
    }

    /// Training records are drawn at "step" + 1 (the console's 1-based step), eval records at "step" (steps
    /// completed when evaluated); only finite numbers become scalars.
    @Test func recordsMapToScalars() throws {
        let train: [String: Any] = ["step": 0, "loss": 0.5, "trained_tokens": 12, "refusal_reason": "x",
                                    "flag": true, "nan": Double.nan, "inf": Double.infinity, "f": Float(0.25)]
        let t = try #require(TensorBoardWriter.scalars(of: train))
        #expect(t.step == 1)
        #expect(t.scalars == ["loss": 0.5, "trained_tokens": 12, "f": 0.25])
        let eval: [String: Any] = ["step": 20, "kind": "eval", "eval_accuracy": 0.75]
        let e = try #require(TensorBoardWriter.scalars(of: eval))
        #expect(e.step == 20 && e.scalars == ["eval_accuracy": 0.75])
        #expect(TensorBoardWriter.scalars(of: ["loss": 1.0]) == nil)
        // A JSON-decoded row: NSNumber 0 and 1 are numbers (on Linux they also pass `is Bool`).
        let json = try #require(try JSONSerialization.jsonObject(with: Data(#"{"step":4,"kl":0,"n":1}"#.utf8)) as? [String: Any])
        let j = try #require(TensorBoardWriter.scalars(of: json))
        #expect(j.step == 5 && j.scalars == ["kl": 0, "n": 1])
    }

    @Test func unwritableDirectoryIsOneLine() throws {
        let d = try Fixtures.temporaryDirectory("rlif-tb")
        defer { try? FileManager.default.removeItem(at: d) }
        let file = d.appendingPathComponent("file")
        try Data("x".utf8).write(to: file)
        do { _ = try TensorBoardWriter(directory: file.appendingPathComponent("tb")); Issue.record("no error") }
        catch let e as FileSystemError {
            #expect("\(e)".contains(file.path))
            #expect(!"\(e)".contains("\n"))
        }
    }

    /// Two writers of one process in one second get two files (O_EXCL), never one shared.
    @Test func twoWritersTwoFiles() throws {
        let d = try Fixtures.temporaryDirectory("rlif-tb")
        defer { try? FileManager.default.removeItem(at: d) }
        let a = try TensorBoardWriter(directory: d, wallTime: 1e9), b = try TensorBoardWriter(directory: d, wallTime: 1e9)
        #expect(a.url != b.url)
    }
}

/// Resume: the event files lose the events past the checkpoint (TensorBoard would otherwise draw two values at
/// those steps: checked with tensorboard 2.21's EventAccumulator, it keeps both).
@Suite struct TensorBoardResumeTests {
    @Test func trimKeepsStepsThroughTheCheckpointAndDropsATornTail() throws {
        let d = try Fixtures.temporaryDirectory("rlif-tb")
        defer { try? FileManager.default.removeItem(at: d) }
        let w = try TensorBoardWriter(directory: d, wallTime: 1e9)
        try w.add(record: ["step": 0, "kind": "eval", "eval_accuracy": 0.5])
        for s in 0..<5 { try w.add(record: ["step": s, "loss": Double(s)]) }
        try w.add(record: ["step": 3, "kind": "eval", "eval_accuracy": 0.75])
        try w.add(record: ["step": 5, "kind": "eval", "eval_accuracy": 0.875])
        // A writer killed mid-record.
        let h = try FileHandle(forWritingTo: w.url)
        try h.seekToEnd(); try h.write(contentsOf: Data([1, 2, 3])); try h.close()
        #expect(throws: TFRecord.FormatError.self) { try TFRecord.events(in: w.url) }

        let changed = try TensorBoardWriter.trim(directory: d, keepingStepsThrough: 3)
        #expect(changed == [w.url])
        let events = try TFRecord.events(in: w.url)
        #expect(events.first?.fileVersion == "brain.Event:2")
        #expect(events.dropFirst().map(\.step) == [0, 1, 2, 3, 3])
        #expect(events.dropFirst().map { $0.scalars.map(\.tag) } == [["eval_accuracy"], ["loss"], ["loss"], ["loss"], ["eval_accuracy"]])
        // Nothing left to drop: the file is not rewritten.
        #expect(try TensorBoardWriter.trim(directory: d, keepingStepsThrough: 3).isEmpty)
    }
}
