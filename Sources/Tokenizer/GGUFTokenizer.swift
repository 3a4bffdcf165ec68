import Foundation
import GGUF
import Shared

/// The Hugging Face tokenizer files a GGUF's `tokenizer.*` metadata describes: the same `tokenizer.json` that
/// transformers' GGUF converter builds (transformers/integrations/gguf/gguf_tokenizer_mapping.py, 5.x:
/// `byte_level_tokenizer` + `add_gguf_special_tokens` + `set_split_regex`) and a `tokenizer_config.json` with the
/// special tokens, add_bos/add_eos and the chat template. `Tokenizer(gguf:)` loads it; `rlif convert` writes it.
/// Ids equal transformers' `AutoTokenizer.from_pretrained(dir, gguf_file=...)` (tests: `GGUFTokenizerTests`).
///
/// Only `tokenizer.ggml.model` = `gpt2` (byte-level BPE) is supported. What is built from it:
/// - vocab: `tokenizer.ggml.tokens[i]` -> i, each token spelled in GPT-2's byte alphabet (a token already made only
///   of alphabet characters is kept as is, any other is its UTF-8 bytes mapped to the alphabet); for repeated
///   spellings the last index wins (a Python dict); merges: `tokenizer.ggml.merges` ("a b").
/// - added tokens: token type 3 (control) whose characters are all in the alphabet -> special (others are llama.cpp
///   mislabels transformers skips); then type 4 (user-defined) whose text is in the vocab -> added, not special;
///   then the bos/eos/unk/pad token strings, special, when not added yet. All matched whole in raw text.
/// - normalizer none; pre-tokenizer by `tokenizer.ggml.pre` (`preTokenizer(for:)`); ByteLevel decoder; a
///   TemplateProcessing post-processor adding BOS / EOS per `tokenizer.ggml.add_bos_token` / `add_eos_token`.
public struct GGUFTokenizerFiles: Sendable {
    /// `tokenizer.json` (UTF-8 JSON, keys sorted).
    public let tokenizerJSON: Data
    /// `tokenizer_config.json`: bos/eos/unk/pad tokens, add_bos_token, add_eos_token, chat_template (when present).
    public let tokenizerConfigJSON: Data
    /// What `Tokenizer(json:file:config:)` needs besides the JSON (BOS/EOS strings, chat template and its source).
    public let config: Tokenizer.Config
    /// The GGUF file, for messages.
    public let source: String

    /// The pre-tokenizer regexes transformers sets by `tokenizer.ggml.pre` (`GGUF_PRE_TOKENIZER_SPLITS`); the names
    /// in `gpt2Default` get transformers' GPT2Tokenizer default (ByteLevel with GPT-2's regex): llama.cpp's
    /// "smollm" is one (llama.cpp itself splits digits singly there; transformers does not, and we follow transformers).
    static let qwen2Names: Set<String> = ["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"]
    static let llama3Names: Set<String> = ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                                           "midm-2.0", "lfm2", "jina-v5-nano", "dbrx", "smaug-bpe"]
    static let gpt2Default: Set<String> = ["smollm", "gpt2", "default"]

    /// The `pre_tokenizer` JSON object for `tokenizer.ggml.pre` = `name` (nil: key absent = GPT-2 default).
    static func preTokenizer(for name: String?, file: String) throws(TokenizerError) -> [String: Any] {
        func split(_ regex: String) -> [String: Any] {
            ["type": "Sequence", "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": regex], "behavior": "Isolated", "invert": false],
                ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false]]]
        }
        guard let name else { return ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true] }
        if qwen2Names.contains(name) { return split(SplitScanner.qwen2Pattern) }
        if llama3Names.contains(name) { return split(SplitScanner.llama3Pattern) }
        if gpt2Default.contains(name) {
            return ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        }
        let known = (qwen2Names.union(llama3Names).union(gpt2Default)).sorted().joined(separator: ", ")
        throw .unsupported(file: file, field: "tokenizer.ggml.pre", value: "\"\(name)\" (rlif knows: \(known))")
    }

    /// Reads the tokenizer metadata of `gguf`. Errors name the file and the metadata key.
    public init(_ gguf: GGUFFile) throws {
        let file = gguf.url.path
        source = file
        func meta<T>(_ key: String, _ get: (String) throws -> T?) throws -> T? {
            do { return try get(key) } catch {
                throw TokenizerError.invalidValue(file: file, field: key, reason: "\(error)")
            }
        }
        guard let model = try meta("tokenizer.ggml.model", gguf.string) else {
            throw TokenizerError.missingField(file: file, field: "tokenizer.ggml.model")
        }
        guard model == "gpt2" else {
            throw TokenizerError.unsupported(file: file, field: "tokenizer.ggml.model",
                                             value: "\"\(model)\" (only gpt2, byte-level BPE; pass --tokenizer FILE)")
        }
        guard let tokens = try meta("tokenizer.ggml.tokens", gguf.stringArray), !tokens.isEmpty else {
            throw TokenizerError.missingField(file: file, field: "tokenizer.ggml.tokens")
        }
        guard tokens.count < Int(Int32.max) else {
            throw TokenizerError.invalidValue(file: file, field: "tokenizer.ggml.tokens", reason: "\(tokens.count) tokens")
        }
        let merges = try meta("tokenizer.ggml.merges", gguf.stringArray) ?? []
        let types = try meta("tokenizer.ggml.token_type", gguf.intArray) ?? []
        if !types.isEmpty && types.count != tokens.count {
            throw TokenizerError.invalidValue(file: file, field: "tokenizer.ggml.token_type",
                                              reason: "\(types.count) types for \(tokens.count) tokens")
        }
        let preTokenizer = try GGUFTokenizerFiles.preTokenizer(for: try meta("tokenizer.ggml.pre", gguf.string), file: file)

        // Vocabulary in the byte alphabet; the last index of a repeated spelling wins.
        func inAlphabet(_ t: String) -> Bool {
            t.unicodeScalars.allSatisfy { $0.value < ByteLevelMap.byteOf.count && ByteLevelMap.byteOf[Int($0.value)] >= 0 }
        }
        func spelled(_ t: String) -> String {
            if inAlphabet(t) { return t }
            var u: [UInt8] = []
            for b in t.utf8 { ByteLevelMap.appendUTF8(of: b, to: &u) }
            return String(decoding: u, as: UTF8.self)
        }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() { vocab[spelled(t)] = i }

        var mergePairs: [[String]] = []
        mergePairs.reserveCapacity(merges.count)
        for (k, m) in merges.enumerated() {
            let parts = m.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw TokenizerError.invalidValue(file: file, field: "tokenizer.ggml.merges[\(k)]",
                                                  reason: "expected \"left right\", found \(m.debugDescription)")
            }
            mergePairs.append([String(parts[0]), String(parts[1])])
        }

        // Special tokens by id.
        func tokenName(_ key: String) throws -> String? {
            guard let id = try meta(key, gguf.int) else { return nil }
            guard id >= 0 && id < tokens.count else {
                throw TokenizerError.invalidValue(file: file, field: key, reason: "id \(id) is not in 0..<\(tokens.count)")
            }
            return tokens[id]
        }
        let bos = try tokenName("tokenizer.ggml.bos_token_id")
        let eos = try tokenName("tokenizer.ggml.eos_token_id")
        let unk = try tokenName("tokenizer.ggml.unknown_token_id")
        let pad = try tokenName("tokenizer.ggml.padding_token_id")
        let addBOS = try meta("tokenizer.ggml.add_bos_token", gguf.bool) ?? false
        let addEOS = try meta("tokenizer.ggml.add_eos_token", gguf.bool) ?? false
        let chatTemplate = try meta("tokenizer.chat_template", gguf.string)

        // Added tokens, in transformers' order: control, user-defined, then the named special tokens.
        var added: [[String: Any]] = []
        var addedContents = Set<String>()
        func add(_ content: String, special: Bool) {
            guard let id = vocab[content], addedContents.insert(content).inserted else { return }
            added.append(["id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
                          "normalized": false, "special": special])
        }
        for (i, t) in types.enumerated() where t == 3 && inAlphabet(tokens[i]) { add(tokens[i], special: true) }
        for (i, t) in types.enumerated() where t == 4 { add(tokens[i], special: false) }
        // (A named token not spelled in the byte alphabet has no vocab entry under its text and is skipped.)
        for name in [bos, eos, unk, pad].compactMap({ $0 }) { add(name, special: true) }
        added.sort { ($0["id"] as! Int) < ($1["id"] as! Int) }

        // Post-processor: BOS / EOS per add_bos_token / add_eos_token.
        var single: [[String: Any]] = []
        var pair: [[String: Any]] = []
        var specials: [String: Any] = [:]
        func special(_ name: String?, _ key: String, typeId: Int) throws -> [String: Any] {
            guard let name, let id = vocab[name] else {
                throw TokenizerError.invalidValue(file: file, field: key, reason: "set, but the file has no such token id")
            }
            specials[name] = ["id": name, "ids": [id], "tokens": [name]]
            return ["SpecialToken": ["id": name, "type_id": typeId]]
        }
        if addBOS { single.append(try special(bos, "tokenizer.ggml.add_bos_token", typeId: 0)) }
        single.append(["Sequence": ["id": "A", "type_id": 0]])
        if addEOS { single.append(try special(eos, "tokenizer.ggml.add_eos_token", typeId: 0)) }
        pair = single
        if addBOS { pair.append(try special(bos, "tokenizer.ggml.add_bos_token", typeId: 1)) }
        pair.append(["Sequence": ["id": "B", "type_id": 1]])
        if addEOS { pair.append(try special(eos, "tokenizer.ggml.add_eos_token", typeId: 1)) }

        // Written by hand: JSONSerialization takes tens of seconds on a 150k-entry vocabulary on Linux. The vocab is in
        // id order (as transformers writes it); small objects go through JSONSerialization.
        func small(_ obj: Any) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
        }
        var out = "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":" + (try small(added))
        out += ",\"normalizer\":null,\"pre_tokenizer\":" + (try small(preTokenizer))
        out += ",\"post_processor\":" + (try small(["type": "TemplateProcessing", "single": single, "pair": pair,
                                                      "special_tokens": specials] as [String: Any]))
        out += ",\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true}"
        out += ",\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":\"\","
        out += "\"end_of_word_suffix\":\"\",\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,\"vocab\":{"
        var first = true
        for (t, i) in vocab.sorted(by: { $0.value < $1.value }) {
            if !first { out += "," }
            first = false
            appendJSONString(t, to: &out)
            out += ":\(i)"
        }
        out += "},\"merges\":["
        for (k, m) in mergePairs.enumerated() {
            if k > 0 { out += "," }
            out += "["
            appendJSONString(m[0], to: &out)
            out += ","
            appendJSONString(m[1], to: &out)
            out += "]"
        }
        out += "]}}"
        tokenizerJSON = Data(out.utf8)

        var cfg: [String: Any] = ["add_bos_token": addBOS, "add_eos_token": addEOS,
                                  "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1 << 30]
        for (k, v) in [("bos_token", bos), ("eos_token", eos), ("unk_token", unk), ("pad_token", pad)] {
            cfg[k] = v ?? NSNull()
        }
        if let chatTemplate { cfg["chat_template"] = chatTemplate }
        tokenizerConfigJSON = try JSONSerialization.data(withJSONObject: cfg, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        config = Tokenizer.Config(bosToken: bos, eosToken: eos,
                                  chatTemplate: chatTemplate.map { ($0, file + " tokenizer.chat_template") })
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` into `directory` (which must exist).
    public func write(to directory: URL) throws {
        try tokenizerJSON.write(to: directory.appendingPathComponent("tokenizer.json"), options: .atomic)
        try tokenizerConfigJSON.write(to: directory.appendingPathComponent("tokenizer_config.json"), options: .atomic)
    }

    /// The tokenizer these files describe.
    public func tokenizer() throws -> Tokenizer {
        try Tokenizer(json: [UInt8](tokenizerJSON), file: source + " (tokenizer from GGUF metadata)", config: config)
    }
}

extension Tokenizer {
    /// The tokenizer of a GGUF file's metadata (see `GGUFTokenizerFiles`).
    public convenience init(gguf: GGUFFile) throws {
        let files = try GGUFTokenizerFiles(gguf)
        try self.init(json: [UInt8](files.tokenizerJSON), file: files.source + " (tokenizer from GGUF metadata)",
                      config: files.config)
    }

    /// The tokenizer of the GGUF file at `url` (memory-mapped; only its metadata is read).
    public convenience init(ggufFile url: URL) throws {
        try self.init(gguf: try GGUFFile(contentsOf: url))
    }

    /// The tokenizer for a `--model` path: a `.gguf` file's own (unless `tokenizerFile` is given), else
    /// `tokenizerFile` or `<dir>/tokenizer.json`; nil when a directory has no tokenizer.json and none is given.
    public static func forModel(_ path: String, tokenizerFile: String? = nil) throws -> Tokenizer? {
        if let t = tokenizerFile { return try Tokenizer(contentsOf: URL(fileURLWithPath: t)) }
        if path.lowercased().hasSuffix(".gguf") { return try Tokenizer(ggufFile: URL(fileURLWithPath: path)) }
        let file = URL(fileURLWithPath: path).appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        return try Tokenizer(contentsOf: file)
    }
}
