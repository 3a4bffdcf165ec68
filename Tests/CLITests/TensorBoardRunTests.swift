import Foundation
import TensorBoard
import Testing
import TestSupport

/// `rlif train --single-process` on the embedded default writes `<output_dir>/tb/events.out.tfevents.*` whose
/// scalars are metrics.jsonl's rows, each at its "step" (steps done).
@Suite(.serialized, .enabled(if: CLI.binary != nil, "needs the release rlif binary (swift build -c release, or RLIF_BIN)"))
struct TensorBoardRunTests {
    struct Point: Hashable, Comparable, CustomStringConvertible {
        var step: Int64; var tag: String; var value: Float
        static func < (a: Self, b: Self) -> Bool { (a.step, a.tag, a.value) < (b.step, b.tag, b.value) }
        var description: String { "\(tag)@\(step)=\(value)" }
    }

    /// A metrics.jsonl value: read with JSONDecoder, whose numbers are `Double(text)` (correctly rounded);
    /// JSONSerialization's NSNumber was off by an ulp now and then, which Float() sometimes carried over.
    enum Value: Decodable {
        case number(Double), text(String), other
        init(from d: Decoder) throws {
            let c = try d.singleValueContainer()
            if let x = try? c.decode(Double.self) { self = .number(x) }
            else if let s = try? c.decode(String.self) { self = .text(s) }
            else { self = .other }
        }
    }

    /// Every finite number of every metrics.jsonl row (but "step"), at its TensorBoard step.
    static func expected(metrics: URL) throws -> [Point] {
        var out: [Point] = []
        for line in try String(contentsOf: metrics, encoding: .utf8).split(separator: "\n") {
            let row = try JSONDecoder().decode([String: Value].self, from: Data(line.utf8))
            guard case .number(let s)? = row["step"] else { Issue.record("no step in \(line)"); continue }
            let step = Int(s)
            // Records with a kind count steps done; rows of the schema before (no kind) were 0-based.
            var hasKind = false
            if case .text? = row["kind"] { hasKind = true }
            let x = Int64(hasKind ? step : step + 1)
            for (k, v) in row where k != "step" {
                if case .number(let n) = v, n.isFinite { out.append(Point(step: x, tag: k, value: Float(n))) }
            }
        }
        return out.sorted()
    }

    @Test func singleProcessRunWritesMetricsAsScalars() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let out = d.appendingPathComponent("run")
        let r = try CLI.run(["train", "--single-process", "--output-dir", out.path, "--set", "steps=3",
                             "--set", "eval_every=2", "--set", "eval_limit=8", "--set", "checkpoint_every=0"])
        #expect(r.status == 0, "\(r.err)")
        let files = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("tb").path)
        #expect(files.count == 1)
        let file = try #require(files.first)
        #expect(file.hasPrefix("events.out.tfevents."))
        let events = try TFRecord.events(in: out.appendingPathComponent("tb/\(file)"))
        #expect(events.first?.fileVersion == "brain.Event:2")
        // 3 training steps + evals before step 1, after 2 and after 3.
        #expect(events.count == 1 + 3 + 3)
        let got = events.dropFirst().flatMap { e in e.scalars.map { Point(step: e.step, tag: $0.tag, value: $0.value) } }.sorted()
        let want = try Self.expected(metrics: out.appendingPathComponent("metrics.jsonl"))
        #expect(want.count > 60)
        #expect(got == want, "only in the event file: \(Set(got).subtracting(want).sorted().prefix(5)); only in metrics.jsonl: \(Set(want).subtracting(got).sorted().prefix(5))")
        #expect(Set(got.map(\.step)) == [0, 1, 2, 3])
    }

    /// Killed (SIGKILL) after step 3 with a checkpoint at 2, then resumed: the first event file loses step 3 (the
    /// resumed run does it again), so the event files together still equal metrics.jsonl, one value per step.
    @Test func killedAndResumedRunHasOneValuePerStep() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let out = d.appendingPathComponent("run")
        let args = ["train", "--single-process", "--output-dir", out.path, "--set", "steps=5",
                    "--set", "eval_every=0", "--set", "checkpoint_every=2"]
        let killed = try CLI.run(args, interruptWith: SIGKILL, whenOut: "step 3/5")
        #expect(killed.status != 0)
        let r = try CLI.run(args + ["--resume"])
        #expect(r.status == 0, "\(r.err)")
        let tb = out.appendingPathComponent("tb")
        let files = try FileManager.default.contentsOfDirectory(atPath: tb.path).sorted()
        #expect(files.count == 2)
        let got = try files.flatMap { f in
            try TFRecord.events(in: tb.appendingPathComponent(f)).dropFirst().flatMap { e in
                e.scalars.map { Point(step: e.step, tag: $0.tag, value: $0.value) }
            }
        }.sorted()
        let want = try Self.expected(metrics: out.appendingPathComponent("metrics.jsonl"))
        #expect(got == want, "only in the event files: \(Set(got).subtracting(want).sorted().prefix(5)); only in metrics.jsonl: \(Set(want).subtracting(got).sorted().prefix(5))")
        #expect(got.filter { $0.tag == "loss" }.map(\.step) == [1, 2, 3, 4, 5])
    }

    @Test func tensorboardFalseWritesNoEventFile() throws {
        let d = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: d) }
        let out = d.appendingPathComponent("run")
        let r = try CLI.run(["train", "--single-process", "--output-dir", out.path, "--set", "steps=1",
                             "--set", "eval_every=0", "--set", "checkpoint_every=0", "--set", "tensorboard=false"])
        #expect(r.status == 0, "\(r.err)")
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("metrics.jsonl").path))
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("tb").path))
    }
}
