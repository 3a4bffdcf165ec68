import Foundation

/// One self-contained HTML page for a run directory: inline SVG line charts of the step records (reward,
/// self-certainty, held-out accuracy, KL, response length, learning rate, throughput), a histogram of
/// self-certainty for right vs wrong answers when eval items are given, and the run's configuration. No scripts,
/// no external files, so it opens anywhere and can be attached to a report. Pure: rows in, text out
/// (`RunReportTests`); `rlif report` reads the files.
public struct RunReport {
    /// metrics.jsonl rows, in file order, in the current schema (`MetricsRows.normalized`).
    public var rows: [[String: Any]]
    /// The run's configuration as pretty JSON, if found.
    public var configJSON: String?
    /// Items of an evaluation (`rlif eval --items`, or the run's last evaluation), for the right-vs-wrong histogram.
    public var evalItems: [EvalReport.Item]
    public var title: String

    public init(rows: [[String: Any]], configJSON: String? = nil, evalItems: [EvalReport.Item] = [], title: String) {
        self.rows = MetricsRows.normalized(rows)
        self.configJSON = configJSON
        self.evalItems = evalItems
        self.title = title
    }

    /// Reads `<dir>/metrics.jsonl` (required) and the configuration (`train_config.json` in the directory or in
    /// the checkpoint `latest` names).
    public static func load(runDirectory dir: URL, evalItems: URL? = nil) throws -> RunReport {
        let rows = try MetricsRows.read(dir.appendingPathComponent("metrics.jsonl"))
        var config: String? = nil
        var candidates = [dir.appendingPathComponent("train_config.json")]
        if let latest = try? Checkpointing.latest(in: dir) { candidates.append(latest.appendingPathComponent("train_config.json")) }
        for c in candidates {
            if let d = FileManager.default.contents(atPath: c.path) { config = String(decoding: d, as: UTF8.self); break }
        }
        var items: [EvalReport.Item] = []
        // Without --eval-items: the items of the run's own last evaluation (`<dir>/eval/step-N.jsonl`).
        if let e = evalItems ?? EvalItemsFile.latestTraining(output: dir) {
            guard let file = try EvalItemsFile.read(e) else {
                throw DatasetError(file: e.path, line: nil, message: "cannot read (missing or empty)")
            }
            items = file.items
        }
        return RunReport(rows: rows, configJSON: config, evalItems: items, title: dir.lastPathComponent)
    }

    /// A chart: series drawn against the step.
    struct Chart {
        var title: String
        var series: [(label: String, points: [(Double, Double)])]
        var percent = false
    }

    /// (step, value) of `key` over the training records, or the eval records with `eval` (steps count optimizer
    /// steps done, as the console prints them).
    func points(_ key: String, eval: Bool = false) -> [(Double, Double)] {
        rows.compactMap { r in
            guard let s = (r["step"] as? NSNumber)?.doubleValue, let v = (r[key] as? NSNumber)?.doubleValue, v.isFinite
            else { return nil }
            let isEval = (r["kind"] as? String) == RecordKind.eval.rawValue
            return isEval == eval ? (s, v) : nil
        }
    }

    var charts: [Chart] {
        [
            Chart(title: "Reward (mean over completions)", series: [("reward", points("reward_mean"))]),
            Chart(title: "Self-certainty (mean, min, max)", series: [("mean", points("self_certainty")),
                                                                    ("min", points("self_certainty_min")),
                                                                    ("max", points("self_certainty_max"))]),
            Chart(title: "Held-out accuracy", series: [("eval accuracy", points("eval_accuracy", eval: true)),
                                                      ("training accuracy (weight 0)", points("train_accuracy"))],
                  percent: true),
            Chart(title: "KL to the reference (k3, mean)", series: [("kl", points("kl"))]),
            Chart(title: "Response length (tokens)", series: [("mean", points("response_length")),
                                                             ("max", points("response_length_max"))]),
            Chart(title: "Learning rate", series: [("lr", points("lr"))]),
            Chart(title: "Throughput (tokens/s)", series: [("training", points("train_tokens_per_second")),
                                                          ("sampling", points("sample_tokens_per_second")),
                                                          ("actors", points("actor_tokens_per_second"))]),
        ].filter { $0.series.contains { !$0.points.isEmpty } }
    }

    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// Round tick values covering lo...hi (about `n` of them).
    static func ticks(_ lo: Double, _ hi: Double, n: Int = 5) -> [Double] {
        let span = max(hi - lo, 1e-12)
        let raw = span / Double(n)
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        var t = (lo / step).rounded(.up) * step
        var out: [Double] = []
        while t <= hi + step * 1e-9 { out.append(t); t += step }
        return out
    }

    static func label(_ v: Double, percent: Bool) -> String {
        if percent { return String(format: "%.0f%%", v * 100) }
        let a = abs(v)
        if a != 0 && (a < 1e-3 || a >= 1e5) { return String(format: "%.1e", v) }
        return String(format: a >= 100 ? "%.0f" : a >= 1 ? "%.2f" : "%.3f", v)
    }

    /// One line chart as SVG (W×H pixels).
    static func svg(_ c: Chart, width: Double = 460, height: Double = 260) -> String {
        let ml = 62.0, mr = 12.0, mt = 28.0, mb = 40.0
        let all = c.series.flatMap(\.points)
        var x0 = all.map(\.0).min() ?? 0, x1 = all.map(\.0).max() ?? 1
        var y0 = all.map(\.1).min() ?? 0, y1 = all.map(\.1).max() ?? 1
        if x1 == x0 { x0 -= 1; x1 += 1 }
        if y1 == y0 { let d = max(abs(y0) * 0.05, 1e-6); y0 -= d; y1 += d }
        let pad = (y1 - y0) * 0.05
        y0 -= pad; y1 += pad
        if c.percent { y0 = max(0, y0); y1 = min(1, y1) }
        let pw = width - ml - mr, ph = height - mt - mb
        func px(_ x: Double) -> Double { ml + (x - x0) / (x1 - x0) * pw }
        func py(_ y: Double) -> Double { mt + (1 - (y - y0) / (y1 - y0)) * ph }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(esc(c.title))\">"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>"
        s += "<text x=\"\(ml)\" y=\"18\" font-size=\"13\" font-weight=\"600\">\(esc(c.title))</text>"
        for t in ticks(y0, y1) {
            let y = py(t)
            s += "<line x1=\"\(ml)\" x2=\"\(ml + pw)\" y1=\"\(y)\" y2=\"\(y)\" stroke=\"#e5e5e5\"/>"
            s += "<text x=\"\(ml - 6)\" y=\"\(y + 4)\" font-size=\"10\" text-anchor=\"end\" fill=\"#555\">\(label(t, percent: c.percent))</text>"
        }
        for t in ticks(x0, x1, n: 6) where t == t.rounded() {
            let x = px(t)
            s += "<line x1=\"\(x)\" x2=\"\(x)\" y1=\"\(mt + ph)\" y2=\"\(mt + ph + 4)\" stroke=\"#555\"/>"
            s += "<text x=\"\(x)\" y=\"\(mt + ph + 16)\" font-size=\"10\" text-anchor=\"middle\" fill=\"#555\">\(Int(t))</text>"
        }
        s += "<rect x=\"\(ml)\" y=\"\(mt)\" width=\"\(pw)\" height=\"\(ph)\" fill=\"none\" stroke=\"#999\"/>"
        s += "<text x=\"\(ml + pw / 2)\" y=\"\(height - 6)\" font-size=\"11\" text-anchor=\"middle\" fill=\"#333\">step</text>"
        var legendX = ml + 4
        for (k, ser) in c.series.enumerated() where !ser.points.isEmpty {
            let color = colors[k % colors.count]
            let pts = ser.points.map { "\(px($0.0)),\(py($0.1))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.6\" points=\"\(pts)\"/>"
            if ser.points.count <= 40 {
                for p in ser.points { s += "<circle cx=\"\(px(p.0))\" cy=\"\(py(p.1))\" r=\"2.2\" fill=\"\(color)\"/>" }
            }
            if c.series.count > 1 {
                s += "<rect x=\"\(legendX)\" y=\"\(mt + 6)\" width=\"10\" height=\"3\" fill=\"\(color)\"/>"
                s += "<text x=\"\(legendX + 14)\" y=\"\(mt + 11)\" font-size=\"10\" fill=\"#333\">\(esc(ser.label))</text>"
                legendX += 22 + Double(ser.label.count) * 5.6
            }
        }
        return s + "</svg>"
    }

    /// Self-certainty histogram of right vs wrong answers (overlaid, as fractions of each class).
    static func histogram(_ items: [EvalReport.Item], width: Double = 460, height: Double = 260) -> String {
        let right = items.filter(\.correct).map { Double($0.selfCertainty) }
        let wrong = items.filter { !$0.correct }.map { Double($0.selfCertainty) }
        let all = right + wrong
        guard let lo = all.min(), let hi = all.max() else { return "" }
        let bins = 20, span = max(hi - lo, 1e-9)
        func counts(_ v: [Double]) -> [Double] {
            var c = [Double](repeating: 0, count: bins)
            for x in v { c[min(bins - 1, Int((x - lo) / span * Double(bins)))] += 1 }
            return c.map { v.isEmpty ? 0 : $0 / Double(v.count) }
        }
        let cr = counts(right), cw = counts(wrong)
        let top = max(cr.max() ?? 0, cw.max() ?? 0, 1e-9)
        let ml = 50.0, mr = 12.0, mt = 28.0, mb = 40.0, pw = width - ml - mr, ph = height - mt - mb
        let bw = pw / Double(bins)
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"self-certainty histogram\">"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>"
        s += "<text x=\"\(ml)\" y=\"18\" font-size=\"13\" font-weight=\"600\">Self-certainty of right (\(right.count)) vs wrong (\(wrong.count)) answers</text>"
        for (k, (c, color)) in [(cr, "#2ca02c"), (cw, "#d62728")].enumerated() {
            for b in 0..<bins where c[b] > 0 {
                let h = c[b] / top * ph
                s += "<rect x=\(q(ml + Double(b) * bw + Double(k) * bw / 2)) y=\(q(mt + ph - h)) width=\(q(bw / 2 - 0.5)) height=\(q(h)) fill=\"\(color)\" opacity=\"0.8\"/>"
            }
        }
        s += "<rect x=\"\(ml)\" y=\"\(mt)\" width=\"\(pw)\" height=\"\(ph)\" fill=\"none\" stroke=\"#999\"/>"
        for t in ticks(lo, hi) {
            let x = ml + (t - lo) / span * pw
            s += "<text x=\"\(x)\" y=\"\(mt + ph + 16)\" font-size=\"10\" text-anchor=\"middle\" fill=\"#555\">\(label(t, percent: false))</text>"
        }
        s += "<text x=\"\(ml + pw / 2)\" y=\"\(height - 6)\" font-size=\"11\" text-anchor=\"middle\" fill=\"#333\">mean self-certainty of the answer (fraction of each class per bin)</text>"
        s += "<rect x=\"\(ml + pw - 120)\" y=\"\(mt + 6)\" width=\"10\" height=\"8\" fill=\"#2ca02c\"/><text x=\"\(ml + pw - 106)\" y=\"\(mt + 14)\" font-size=\"10\">right</text>"
        s += "<rect x=\"\(ml + pw - 70)\" y=\"\(mt + 6)\" width=\"10\" height=\"8\" fill=\"#d62728\"/><text x=\"\(ml + pw - 56)\" y=\"\(mt + 14)\" font-size=\"10\">wrong</text>"
        return s + "</svg>"
    }

    static func q(_ v: Double) -> String { "\"\(String(format: "%.2f", v))\"" }

    /// Each chart (and the histogram) as a standalone SVG, by file name ("reward.svg", …).
    public var svgFiles: [(String, String)] {
        var out = charts.map { c -> (String, String) in
            let slug = c.title.lowercased().prefix { $0 != "(" }.split { !$0.isLetter && !$0.isNumber }.joined(separator: "-")
            return ("\(slug).svg", Self.svg(c))
        }
        if !evalItems.isEmpty { out.append(("self-certainty-right-vs-wrong.svg", Self.histogram(evalItems))) }
        return out
    }

    /// The page.
    public var html: String {
        let steps = rows.filter { ($0["kind"] as? String) == RecordKind.train.rawValue }.count
        var h = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>rlif run: \(Self.esc(title))</title>"
        h += "<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}"
        h += ".grid{display:flex;flex-wrap:wrap;gap:12px}.grid svg{border:1px solid #ddd}"
        h += "pre{background:#f6f6f6;padding:12px;font-size:12px;overflow:auto;max-height:420px}</style></head><body>"
        h += "<h1>rlif run: \(Self.esc(title))</h1><p>\(steps) training steps recorded.</p><div class=\"grid\">"
        for c in charts { h += Self.svg(c) }
        if !evalItems.isEmpty {
            let r = EvalReport(items: evalItems)
            h += Self.histogram(evalItems)
            h += "</div><p>Evaluation items: \(r.count), accuracy \(String(format: "%.3f", r.accuracy)); "
            h += "P(right more certain than wrong) \(r.selfCertaintyAUC.map { String(format: "%.3f", $0) } ?? "–"), "
            h += "Mann–Whitney r \(r.selfCertaintyEffectR.map { String(format: "%.3f", $0) } ?? "–").</p>"
        } else {
            h += "</div>"
        }
        if let c = configJSON { h += "<h2>Configuration</h2><pre>\(Self.esc(c))</pre>" }
        return h + "</body></html>\n"
    }
}
