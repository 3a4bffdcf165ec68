import ArgumentParser
import Foundation
import Training

/// `rlif report RUN_DIR`: one self-contained HTML page of a run (charts of its metrics, the self-certainty of
/// right vs wrong answers when eval items are given, its configuration). The page is built by `RunReport`.
struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write an HTML report (inline SVG charts) of a run directory.",
        discussion: "Example: rlif report runs/intuitor-default --out report.html --eval-items eval.jsonl")

    @Argument(help: "Run directory (holds metrics.jsonl).") var runDirectory: String
    @Option(help: "Output HTML file (default: RUN_DIR/report.html).") var out: String?
    @Option(help: "Items of an evaluation (rlif eval --items FILE) for the right-vs-wrong self-certainty histogram.")
    var evalItems: String?
    @Option(help: "Also write each chart as its own .svg file into this directory (for docs).") var svgDir: String?

    func run() throws {
        let dir = URL(fileURLWithPath: runDirectory)
        let report = try RunReport.load(runDirectory: dir, evalItems: evalItems.map(URL.init(fileURLWithPath:)))
        let target = URL(fileURLWithPath: out ?? dir.appendingPathComponent("report.html").path)
        try Data(report.html.utf8).write(to: target, options: .atomic)
        if let s = svgDir {
            let sd = URL(fileURLWithPath: s)
            try FileManager.default.createDirectory(at: sd, withIntermediateDirectories: true)
            for (name, svg) in report.svgFiles {
                try Data(svg.utf8).write(to: sd.appendingPathComponent(name), options: .atomic)
            }
        }
        print(target.path)
    }
}
