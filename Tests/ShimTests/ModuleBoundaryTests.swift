import Foundation
import Testing

/// The C shims stay behind their one Swift module each (Package.swift, docs/ARCHITECTURE.md "Modules"): a new
/// `import CBLAS` in Model or the executable, say, fails here with the file that has it.
@Suite struct ModuleBoundaryTests {
    /// Shim → the one module under Sources/ that may import it.
    static let owner = ["CBLAS": "Kernels", "CKernelSupport": "Kernels", "CZeroMQ": "Transport", "CZlib": "Wire",
                        "CRlifProto": "Wire", "CTensorBoardProto": "TensorBoard"]

    @Test func cShimsAreImportedOnlyByTheirModule() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources")
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
            .compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }
        #expect(files.count > 50, "found only \(files.count) Swift files under \(sources.path)")
        var seen = Set<String>()
        for f in files {
            let module = f.path.dropFirst(sources.path.count + 1).split(separator: "/")[0]
            for line in try String(contentsOf: f, encoding: .utf8).split(separator: "\n") {
                let words = line.split(separator: " ")
                guard let i = words.firstIndex(of: "import"), i + 1 < words.count else { continue }
                let imported = String(words[i + 1])
                guard let owner = Self.owner[imported] else { continue }
                seen.insert(imported)
                #expect(String(module) == owner, "\(f.path) imports \(imported), which only \(owner) may")
            }
        }
        #expect(seen == Set(Self.owner.keys), "shims imported nowhere: \(Set(Self.owner.keys).subtracting(seen))")
    }
}
