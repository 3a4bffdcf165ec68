import ArgumentParser
import Foundation
import Tokenizer
import Training

/// `rlif tokenize`: encode text to token ids (or decode ids to text) with a Hugging Face `tokenizer.json`,
/// exactly as the `tokenizers` library would; for checking prompts and debugging.
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Encode text to token ids, or decode ids to text, with a tokenizer.json.",
        discussion: """
            Examples:
              rlif tokenize --tokenizer ../shared/data/qwen-tokenizer/tokenizer.json --text 'Hello world'
              rlif tokenize --tokenizer tokenizer.json --decode 9707,1879
              rlif tokenize --tokenizer tokenizer.json --chat-ml --system-prompt math --text 'What is 2+2?'
            """)

    @Option(help: "Path to tokenizer.json (tokenizer_config.json next to it is read for BOS/EOS), or a .gguf file (its tokenizer metadata).")
    var tokenizer: String

    @Option(help: "Text to encode.")
    var text: String?

    @Option(help: "Comma-separated token ids to decode instead of encoding.")
    var decode: String?

    @Flag(help: "Apply the post-processor template (e.g. prepend BOS), like add_special_tokens=True.")
    var addSpecialTokens = false

    @Flag(help: "When decoding, drop special tokens.")
    var skipSpecialTokens = false

    @Flag(help: "Wrap --text in the ChatML prompt template (with the assistant generation prompt).")
    var chatML = false

    @Option(help: "Named system prompt for --chat-ml: \(SystemPrompt.all.keys.sorted().joined(separator: ", ")).")
    var systemPrompt: String?

    @Flag(help: "Print JSON: {\"ids\": [...], \"tokens\": [...]} or {\"text\": ...}.")
    var json = false

    @Option(help: "Benchmark instead: encode every question and answer of this GSM8K-style .jsonl, print timings.")
    var benchmark: String?

    @Option(help: "Benchmark repetitions (the best time is reported).")
    var repetitions = 5

    mutating func validate() throws {
        if [text != nil, decode != nil, benchmark != nil].filter({ $0 }).count != 1 {
            throw ValidationError("give exactly one of --text, --decode or --benchmark")
        }
        if let s = systemPrompt, SystemPrompt.all[s] == nil {
            throw ValidationError("unknown --system-prompt \(s); known: \(SystemPrompt.all.keys.sorted())")
        }
    }

    func run() throws {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let tok = tokenizer.lowercased().hasSuffix(".gguf") ? try Tokenizer(ggufFile: URL(fileURLWithPath: tokenizer))
                                                             : try Tokenizer(contentsOf: URL(fileURLWithPath: tokenizer))
        let loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        if let benchmark {
            try runBenchmark(tok, URL(fileURLWithPath: benchmark), loadSeconds: loadSeconds)
            return
        }
        if let decode {
            var ids: [Int32] = []
            for part in decode.split(separator: ",") {
                let t = part.trimmingCharacters(in: .whitespaces)
                guard let v = Int32(t) else { throw ValidationError("--decode: \(t.debugDescription) is not a token id") }
                guard v >= 0 && Int(v) < tok.vocabularySize else {
                    throw CommandError("--decode: token id \(v) is not in this tokenizer's 0..<\(tok.vocabularySize)", command: "tokenize")
                }
                ids.append(v)
            }
            let s = tok.decode(ids, skipSpecialTokens: skipSpecialTokens)
            if json {
                print(try jsonString(["text": s]))
            } else {
                print(s)
            }
            return
        }
        var input = text ?? ""
        if chatML {
            input = ChatTemplate.chatML.prompt(system: systemPrompt.flatMap(SystemPrompt.named), user: input)
        }
        let ids = tok.encode(input, addSpecialTokens: addSpecialTokens)
        if json {
            let tokens = ids.map { tok.tokenString($0) ?? "" }
            print(try jsonString(["ids": ids.map(Int.init), "tokens": tokens] as [String: Any]))
        } else {
            print(ids.map(String.init).joined(separator: " "))
        }
    }

    /// Prints `load_s`, best-of-N single-thread and batch (all cores) encode times of all texts of the file.
    private func runBenchmark(_ tok: Tokenizer, _ url: URL, loadSeconds: Double) throws {
        /// A GSM8K line: both texts are encoded.
        struct QA: Decodable { var question: String; var answer: String }
        let texts = try JSONLines.read(QA.self, from: url).flatMap { [$0.value.question, $0.value.answer] }
        let bytes = texts.reduce(0) { $0 + $1.utf8.count }
        // Process CPU time as well as wall time: on a shared machine the single-thread CPU time is the steadier.
        func cpuSeconds() -> Double {
            var ts = timespec()
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
            return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
        }
        func time(_ body: () -> Int) -> (wall: Double, cpu: Double, tokens: Int) {
            var best = Double.infinity, bestCPU = Double.infinity, tokens = 0
            for _ in 0..<max(1, repetitions) {
                let s = DispatchTime.now().uptimeNanoseconds
                let c = cpuSeconds()
                tokens = body()
                bestCPU = min(bestCPU, cpuSeconds() - c)
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - s) * 1e-9)
            }
            return (best, bestCPU, tokens)
        }
        let single = time { texts.reduce(0) { $0 + tok.encode($1).count } }
        let batch = time { tok.encodeBatch(texts).reduce(0) { $0 + $1.count } }
        precondition(single.tokens == batch.tokens, "batch and single encodes disagree")
        let mb = Double(bytes) / 1e6
        print(String(format: "swift load_s=%.3f texts=%d tokens=%d MB=%.3f single_s=%.4f (%.1f MB/s) single_cpu_s=%.4f batch_s=%.4f (%.1f MB/s, %d threads)",
                     loadSeconds, texts.count, single.tokens, mb, single.wall, mb / single.wall, single.cpu,
                     batch.wall, mb / batch.wall, ProcessInfo.processInfo.activeProcessorCount))
    }

    private func jsonString(_ obj: Any) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}
