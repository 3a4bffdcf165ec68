import Foundation
import Testing

/// docs/ARCHITECTURE.md (and the other docs) put each claim next to the test that holds it, as `SuiteTests` or
/// `SuiteTests.testName`. A renamed or deleted test would leave the claim pointing at nothing: every such name must
/// be a suite (`struct`/`class`/`extension`) or a test target directory under Tests/, and the test a `func` there.
@Suite struct DocsTestNamesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test func everyTestNamedInTheDocsExists() throws {
        let fm = FileManager.default
        let tests = Self.root.appendingPathComponent("Tests")
        let swiftFiles = fm.enumerator(at: tests, includingPropertiesForKeys: nil)!
            .compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }
        // Suites declared in each file; the functions declared anywhere in the suite's files.
        var funcsBySuite: [String: Set<String>] = [:]
        for f in swiftFiles {
            let text = try String(contentsOf: f, encoding: .utf8)
            let suites = text.matches(of: /(?:struct|class|enum|extension)\s+(\w+Tests)\b/).map { String($0.1) }
            let funcs = Set(text.matches(of: /func\s+(\w+)\s*\(/).map { String($0.1) })
            for s in suites { funcsBySuite[s, default: []].formUnion(funcs) }
        }
        let targets = Set(try fm.contentsOfDirectory(atPath: tests.path))
        #expect(funcsBySuite.count > 50, "found only \(funcsBySuite.count) suites under \(tests.path)")

        let docs = try fm.contentsOfDirectory(atPath: Self.root.appendingPathComponent("docs").path)
            .filter { $0.hasSuffix(".md") }.map { "docs/\($0)" } + ["README.md", "deploy/README.md"]
        var checked = 0
        for doc in docs {
            let text = try String(contentsOf: Self.root.appendingPathComponent(doc), encoding: .utf8)
            for m in text.matches(of: /`(\w+Tests)(?:\.(\w+))?`/) {
                let suite = String(m.1)
                checked += 1
                if let test = m.2.map(String.init) {
                    #expect(funcsBySuite[suite]?.contains(test) == true, "\(doc) names \(suite).\(test): no such test")
                } else {
                    #expect(funcsBySuite[suite] != nil || targets.contains(suite), "\(doc) names \(suite): no such suite or test target")
                }
            }
        }
        #expect(checked > 50, "found only \(checked) test names in the docs")
    }
}
