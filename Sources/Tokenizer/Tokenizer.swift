import Foundation

/// A Hugging Face `tokenizer.json` BPE tokenizer that encodes and decodes exactly like the `tokenizers` library:
/// byte-level BPE (GPT-2, Qwen2, Llama-3) and SentencePiece-style BPE (Metaspace, byte fallback).
///
/// Pipeline of `encode`: added/special tokens are cut out of the raw text (longest match), each remaining segment
/// is normalised (e.g. NFC), pre-tokenized (regex split, ByteLevel or Metaspace), each piece is merged by BPE
/// rank, and with `addSpecialTokens` the post-processor template (e.g. BOS) is applied.
/// Immutable after `init`, so one instance can be shared by any number of threads.
public final class Tokenizer: Sendable {
    /// Where the tokenizer was loaded from (for messages).
    public let file: String
    let model: BPEModel
    let normalizer: NormalizerStep?
    let preTokenizer: [PreTokenizerStep]
    let rawAdded: AddedMatcher          // added tokens with normalized: false, matched on the raw text
    let normalizedAdded: AddedMatcher   // added tokens with normalized: true, matched after normalisation
    let addedById: [Int32: AddedToken]
    let addedByContent: [String: Int32]
    let specialContents: Set<String>
    let postProcessor: PostProcessor
    let decoder: DecoderStep?

    /// Number of distinct token ids, including added tokens (`tokenizers`' `get_vocab_size(True)`).
    public let vocabularySize: Int
    /// Beginning-of-sequence token: `bos_token` of `tokenizer_config.json` next to the file, else the first
    /// special token of the post-processor template; nil when neither exists (Qwen has no BOS).
    public let bosTokenId: Int32?
    /// End-of-sequence token: `eos_token` of `tokenizer_config.json` next to the file, else the first ADDED token
    /// among `</s>`, `<|im_end|>` (chat models stop there), `<|endoftext|>`, `<|end_of_text|>`, `<|eot_id|>`
    /// (Qwen's vocabulary has an ordinary `</s>` token, which is not an EOS).
    public let eosTokenId: Int32?
    /// The model's Jinja chat template and where it came from: `chat_template.jinja` next to the file (what
    /// transformers writes since 4.47), else `chat_template` of `tokenizer_config.json` (a string, or the entry named
    /// "default" of a list); nil when neither exists. `ChatTemplate.resolve` recognises and renders it.
    public let chatTemplate: (text: String, source: String)?

    /// What `tokenizer_config.json` (or a GGUF's metadata) adds to `tokenizer.json`: BOS/EOS token strings and the
    /// chat template with where it came from.
    public struct Config: Sendable {
        public var bosToken: String?
        public var eosToken: String?
        public var chatTemplate: (text: String, source: String)?
        public init(bosToken: String? = nil, eosToken: String? = nil, chatTemplate: (text: String, source: String)? = nil) {
            self.bosToken = bosToken
            self.eosToken = eosToken
            self.chatTemplate = chatTemplate
        }
    }

    /// Loads `tokenizer.json` (and `tokenizer_config.json` from the same directory when present, for BOS/EOS and the
    /// chat template).
    /// Errors (`TokenizerError`) name the file and the JSON field.
    public convenience init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TokenizerError.unreadable(file: url.path, reason: "\(error.localizedDescription)")
        }
        let dir = url.deletingLastPathComponent()
        let configURL = dir.appendingPathComponent("tokenizer_config.json")
        let tokens = Tokenizer.loadConfigTokens(configURL)
        var config = Config(bosToken: tokens.bos, eosToken: tokens.eos)
        let jinja = dir.appendingPathComponent("chat_template.jinja")
        if let text = try? String(contentsOf: jinja, encoding: .utf8) {
            config.chatTemplate = (text, jinja.path)
        } else if let text = tokens.chatTemplate {
            config.chatTemplate = (text, configURL.path + " chat_template")
        }
        try self.init(json: [UInt8](data), file: url.path, config: config)
    }

    /// Parses a `tokenizer.json` document (`file` names it in errors) with the BOS/EOS/chat template of `config`.
    public init(json bytes: [UInt8], file: String, config: Config) throws {
        self.file = file
        let doc: JSONDocument
        do { doc = try JSONDocument(bytes: bytes) } catch {
            throw TokenizerError.invalidJSON(file: file, offset: error.offset, reason: error.message)
        }
        let root = JSONNode(doc: doc, value: doc.root, path: "", file: file)
        guard case .object = root.value else { throw root.wrong("an object") }

        // Added tokens.
        var added: [AddedToken] = []
        if let list = root["added_tokens"] {
            for t in try list.array() {
                let id = try t.required("id").int()
                guard id >= 0, id < Int(Int32.max) else { throw try t.required("id").invalid("id \(id) out of range") }
                added.append(AddedToken(
                    id: Int32(id), content: try t.required("content").utf8(),
                    special: try t["special"]?.bool() ?? false, singleWord: try t["single_word"]?.bool() ?? false,
                    lstrip: try t["lstrip"]?.bool() ?? false, rstrip: try t["rstrip"]?.bool() ?? false,
                    normalized: try t["normalized"]?.bool() ?? false))
            }
        }

        let modelNode = try root.required("model")
        self.model = try Tokenizer.loadBPE(modelNode, doc: doc)

        let normalizer = try root["normalizer"].map(Tokenizer.loadNormalizer)
        self.normalizer = normalizer
        // Normalised added tokens are matched in normalised text, so their content is normalised too.
        var normalizedTokens: [AddedToken] = []
        for t in added where t.normalized {
            var n = t
            if let normalizer {
                n.content = Array(normalizer.apply(String(decoding: t.content, as: UTF8.self)).utf8)
            }
            normalizedTokens.append(n)
        }
        self.rawAdded = AddedMatcher(added.filter { !$0.normalized })
        self.normalizedAdded = AddedMatcher(normalizedTokens)
        var byId: [Int32: AddedToken] = [:]
        var byContent: [String: Int32] = [:]
        var specials = Set<String>()
        for t in added {
            byId[t.id] = t
            let s = String(decoding: t.content, as: UTF8.self)
            byContent[s] = t.id
            if t.special { specials.insert(s) }
        }
        self.addedById = byId
        self.addedByContent = byContent
        self.specialContents = specials

        self.preTokenizer = try root["pre_tokenizer"].map(Tokenizer.loadPreTokenizer) ?? []
        self.decoder = try root["decoder"].map(Tokenizer.loadDecoder)
        let model = self.model
        let lookupId: (String) -> Int32? = { s in byContent[s] ?? model.vocab.lookup(Array(s.utf8)) }
        self.postProcessor = try root["post_processor"].map { try Tokenizer.loadPostProcessor($0, lookupId) } ?? .none

        var ids = Set<Int32>(byId.keys)
        for id in 0...max(model.vocab.maxId, 0) where model.vocab.bytes(id) != nil { ids.insert(Int32(id)) }
        self.vocabularySize = ids.count

        // BOS / EOS, best effort.
        self.chatTemplate = config.chatTemplate
        var bos = config.bosToken.flatMap(lookupId)
        if bos == nil, case .template(let items) = postProcessor.firstTemplate, case .special(let first)? = items.first {
            bos = first.first
        }
        self.bosTokenId = bos
        self.eosTokenId = config.eosToken.flatMap(lookupId)
            ?? ["</s>", "<|im_end|>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>"].lazy.compactMap { byContent[$0] }.first
    }

    // MARK: - Encode / decode

    /// Token ids of `text`, as `tokenizers`' `encode(text, add_special_tokens=...).ids`. Added/special tokens
    /// written in the text (e.g. `<|im_start|>`) are always recognised; `addSpecialTokens` applies the
    /// post-processor template (e.g. prepends BOS `<s>` for Llama-style files, nothing for Qwen).
    public func encode(_ text: String, addSpecialTokens: Bool = false) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(text.utf8.count / 3 + 4)
        var scratch = BPEModel.Scratch()
        let bytes = Array(text.utf8)
        for (id, r) in rawAdded.split(bytes, 0, bytes.count) {
            if let id { out.append(id); continue }
            encodeSegment(bytes, r, atOrigin: r.lowerBound == 0, into: &out, scratch: &scratch)
        }
        return addSpecialTokens ? postProcessor.apply(out) : out
    }

    /// `encode` of every text, split over `threads` threads (default: all cores), in input order.
    public func encodeBatch(_ texts: [String], addSpecialTokens: Bool = false,
                            threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> [[Int32]] {
        let n = texts.count
        let workers = max(1, min(threads, n))
        if workers == 1 { return texts.map { encode($0, addSpecialTokens: addSpecialTokens) } }
        let results = BatchResults(count: n)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var i = w
            while i < n {
                results.set(i, encode(texts[i], addSpecialTokens: addSpecialTokens))
                i += workers
            }
        }
        return results.values
    }

    private func encodeSegment(_ bytes: [UInt8], _ r: Range<Int>, atOrigin: Bool, into out: inout [Int32],
                               scratch: inout BPEModel.Scratch) {
        var seg: [UInt8]
        if let normalizer {
            let slice = bytes[r]
            if case .nfc = normalizer, slice.allSatisfy({ $0 < 0xCC }) {
                seg = Array(slice)  // NFC-stable: every scalar is below U+0300
            } else {
                seg = Array(normalizer.apply(String(decoding: slice, as: UTF8.self)).utf8)
            }
        } else {
            seg = Array(bytes[r])
        }
        for (id, sr) in normalizedAdded.split(seg, 0, seg.count) {
            if let id { out.append(id); continue }
            var pieces = Pieces(buffer: seg, ranges: [sr], originPiece: atOrigin && sr.lowerBound == 0 ? 0 : -1)
            var byteLevel = false
            for step in preTokenizer { pieces = step.apply(pieces, byteLevel: &byteLevel, scratch: &scratch.split) }
            pieces.buffer.withUnsafeBufferPointer { buf in
                for pr in pieces.ranges where !pr.isEmpty {
                    model.encodeWord(UnsafeBufferPointer(rebasing: buf[pr]), byteLevel: byteLevel, into: &out,
                                     scratch: &scratch)
                }
            }
        }
        seg.removeAll()
    }

    /// The pieces the normalizer + pre-tokenizer make of `text` (no added-token splitting), spelled as the model
    /// sees them (ByteLevel characters after a ByteLevel step): `pre_tokenize_str` of `tokenizers`, for tests.
    func preTokenizedPieces(_ text: String) -> [String] {
        let normalized = normalizer.map { Array($0.apply(text).utf8) } ?? Array(text.utf8)
        var pieces = Pieces(buffer: normalized, ranges: normalized.isEmpty ? [] : [0..<normalized.count], originPiece: 0)
        var byteLevel = false
        var scratch = SplitScratch()
        for step in preTokenizer { pieces = step.apply(pieces, byteLevel: &byteLevel, scratch: &scratch) }
        return pieces.ranges.filter { !$0.isEmpty }.map { r in
            if !byteLevel { return String(decoding: pieces.buffer[r], as: UTF8.self) }
            var u: [UInt8] = []
            for b in pieces.buffer[r] { ByteLevelMap.appendUTF8(of: b, to: &u) }
            return String(decoding: u, as: UTF8.self)
        }
    }

    /// The text of `ids`, as `tokenizers`' `decode(ids, skip_special_tokens=...)` (note that Python's default
    /// there is True; here it is false). Unknown ids are dropped; invalid UTF-8 becomes U+FFFD.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            let token: String
            if let a = addedById[id] {
                token = String(decoding: a.content, as: UTF8.self)
            } else if let b = model.vocab.bytes(Int(id)) {
                token = String(decoding: b, as: UTF8.self)
            } else { continue }
            if skipSpecialTokens && specialContents.contains(token) { continue }
            tokens.append(token)
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decodeChain(tokens).joined()
    }

    /// The id of a token string: added tokens first (e.g. `<|im_end|>`, `</s>`), then the model vocabulary
    /// (in its own spelling, e.g. `Ġthe` for byte-level files, `▁the` for SentencePiece ones).
    public func tokenId(_ token: String) -> Int32? {
        addedByContent[token] ?? model.vocab.lookup(Array(token.utf8))
    }

    /// The vocabulary spelling of a token id (nil for unknown ids).
    public func tokenString(_ id: Int32) -> String? {
        if let a = addedById[id] { return String(decoding: a.content, as: UTF8.self) }
        return model.vocab.bytes(Int(id)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether `id` is an added token marked `special` (what `skipSpecialTokens` drops).
    public func isSpecialToken(_ id: Int32) -> Bool { addedById[id]?.special ?? false }
}

// MARK: - Loading the pipeline

extension Tokenizer {
    static func loadBPE(_ m: JSONNode, doc: JSONDocument) throws(TokenizerError) -> BPEModel {
        if let type = m["type"] {
            let t = try type.string()
            guard t == "BPE" else { throw type.unsupported("\"\(t)\" (only BPE models)") }
        }
        if let d = m["dropout"], try d.double() > 0 { throw d.unsupported("dropout \(try d.double())") }
        if let p = m["continuing_subword_prefix"], try !p.string().isEmpty { throw p.unsupported(try p.string()) }
        if let p = m["end_of_word_suffix"], try !p.string().isEmpty { throw p.unsupported(try p.string()) }

        let vocabNode = try m.required("vocab")
        guard case .object(let members) = vocabNode.value else { throw vocabNode.wrong("an object") }
        var maxId = -1
        for (k, v) in members {
            guard case .number(let d) = v, d >= 0, d < Double(Int32.max), d.rounded() == d else {
                throw TokenizerError.wrongType(file: vocabNode.file, field: "model.vocab.\(doc.string(k))",
                                               expected: "a non-negative integer id", found: v.typeName)
            }
            maxId = max(maxId, Int(d))
        }
        // Ids are dense in real files; refuse absurd ones rather than allocate tables for them.
        guard maxId < max(16 * members.count, 1 << 20) else {
            throw vocabNode.invalid("largest id \(maxId) is far beyond the \(members.count) tokens")
        }
        var vocab = TokenTable(capacity: members.count, maxId: max(maxId, 0))
        for (k, v) in members {
            guard case .number(let d) = v else { continue }
            let ok = doc.withUTF8(k) { vocab.insert($0, id: Int(d)) }
            if !ok {
                throw vocabNode.invalid("duplicate token or id: \(doc.string(k).debugDescription) -> \(Int(d))")
            }
        }

        // Merges: [["a", "b"], ...] (tokenizers >= 0.20) or ["a b", ...].
        var merges = PairTable(capacity: 16)
        if let mergesNode = m["merges"] {
            guard case .array(let items) = mergesNode.value else { throw mergesNode.wrong("an array") }
            merges = PairTable(capacity: items.count)
            var scratch: [UInt8] = []
            for (rank, item) in items.enumerated() {
                var ids: (Int32, Int32, Int32)? = nil
                var parts: ([UInt8], [UInt8]) = ([], [])
                switch item {
                case .stringPair(let s0, let s1):
                    // Fast path without copying the strings (they are byte ranges of the file).
                    ids = doc.withUTF8(s0) { pa in
                        doc.withUTF8(s1) { pb -> (Int32, Int32, Int32)? in
                            guard let ia = vocab.lookup(pa), let ib = vocab.lookup(pb) else { return nil }
                            scratch.removeAll(keepingCapacity: true)
                            scratch.append(contentsOf: pa)
                            scratch.append(contentsOf: pb)
                            guard let inew = scratch.withUnsafeBufferPointer({ vocab.lookup($0) }) else { return nil }
                            return (ia, ib, inew)
                        }
                    }
                    if ids == nil { parts = (doc.utf8(s0), doc.utf8(s1)) }
                case .string(let s):
                    let u = doc.utf8(s)
                    let split = u.split(separator: 0x20, omittingEmptySubsequences: false)
                    guard split.count == 2 else {
                        throw TokenizerError.invalidValue(file: mergesNode.file, field: "model.merges[\(rank)]",
                                                          reason: "expected \"left right\"")
                    }
                    parts = (Array(split[0]), Array(split[1]))
                    if let ia = vocab.lookup(parts.0), let ib = vocab.lookup(parts.1),
                       let inew = vocab.lookup(parts.0 + parts.1) {
                        ids = (ia, ib, inew)
                    }
                default:
                    throw TokenizerError.wrongType(file: mergesNode.file, field: "model.merges[\(rank)]",
                                                   expected: "a pair of strings", found: item.typeName)
                }
                guard let (ia, ib, inew) = ids else {
                    let (a, b) = parts
                    let missing = vocab.lookup(a) == nil ? a : vocab.lookup(b) == nil ? b : a + b
                    throw TokenizerError.invalidValue(
                        file: mergesNode.file, field: "model.merges[\(rank)]",
                        reason: "token \(String(decoding: missing, as: UTF8.self).debugDescription) is not in model.vocab")
                }
                merges.set(ia, ib, rank: Int32(rank), newId: inew)
            }
        }

        var unkId: Int32? = nil
        if let u = m["unk_token"] { unkId = vocab.lookup(try u.utf8()) }
        var fallback = [Int32](repeating: -1, count: 256)
        var byteLevelIds = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            let name = "<0x" + String(format: "%02X", b) + ">"
            fallback[b] = vocab.lookup(Array(name.utf8)) ?? -1
            var u: [UInt8] = []
            ByteLevelMap.appendUTF8(of: UInt8(b), to: &u)
            byteLevelIds[b] = vocab.lookup(u) ?? -1
        }
        return BPEModel(vocab: vocab, merges: merges, unkId: unkId, fuseUnk: try m["fuse_unk"]?.bool() ?? false,
                        byteFallback: try m["byte_fallback"]?.bool() ?? false,
                        ignoreMerges: try m["ignore_merges"]?.bool() ?? false,
                        byteFallbackIds: fallback, byteLevelIds: byteLevelIds)
    }

    static func loadNormalizer(_ n: JSONNode) throws(TokenizerError) -> NormalizerStep {
        let typeNode = try n.required("type")
        let type = try typeNode.string()
        switch type {
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Prepend": return .prepend(try n.required("prepend").string())
        case "Replace":
            let p = try n.required("pattern")
            guard let s = p["String"] else { throw p.unsupported("a regex pattern (only {\"String\": ...})") }
            return .replace(pattern: try s.string(), content: try n.required("content").string())
        case "Sequence":
            var steps: [NormalizerStep] = []
            for s in try n.required("normalizers").array() { steps.append(try loadNormalizer(s)) }
            return .sequence(steps)
        default:
            throw typeNode.unsupported("\"\(type)\"")
        }
    }

    static func loadPreTokenizer(_ n: JSONNode) throws(TokenizerError) -> [PreTokenizerStep] {
        let typeNode = try n.required("type")
        let type = try typeNode.string()
        switch type {
        case "Sequence":
            var steps: [PreTokenizerStep] = []
            for s in try n.required("pretokenizers").array() { steps += try loadPreTokenizer(s) }
            return steps
        case "Split":
            if let inv = n["invert"], try inv.bool() { throw inv.unsupported("true") }
            let behaviorNode = try n.required("behavior")
            let behavior = try behaviorNode.string()
            guard behavior == "Isolated" || behavior == "Removed" else {
                throw behaviorNode.unsupported("\"\(behavior)\" (only Isolated and Removed)")
            }
            let p = try n.required("pattern")
            let pattern: SplitPattern
            if let r = p["Regex"] {
                let source = try r.string()
                if let s = SplitScanner(pattern: source) {
                    pattern = .scanner(s)
                } else {
                    do { pattern = .regex(try NSRegularExpression(pattern: source)) } catch {
                        throw r.invalid("regex does not compile: \(error)")
                    }
                }
            } else if let s = p["String"] {
                pattern = .literal(try s.utf8())
            } else {
                throw p.invalid("expected {\"Regex\": ...} or {\"String\": ...}")
            }
            return [.split(pattern, removeMatches: behavior == "Removed")]
        case "ByteLevel":
            return [.byteLevel(addPrefixSpace: try n["add_prefix_space"]?.bool() ?? true,
                               useRegex: try n["use_regex"]?.bool() ?? true)]
        case "Metaspace":
            let rep = try n["replacement"]?.utf8() ?? Array("\u{2581}".utf8)
            if rep.isEmpty { throw try n.required("replacement").invalid("must not be empty") }
            var scheme: PreTokenizerStep.PrependScheme = .always
            if let s = n["prepend_scheme"] {
                switch try s.string() {
                case "always": scheme = .always
                case "first": scheme = .first
                case "never": scheme = .never
                default: throw s.invalid("expected always, first or never")
                }
            } else if let a = n["add_prefix_space"] {
                scheme = try a.bool() ? .always : .never
            }
            return [.metaspace(replacement: rep, prepend: scheme, split: try n["split"]?.bool() ?? true)]
        default:
            throw typeNode.unsupported("\"\(type)\"")
        }
    }

    static func loadDecoder(_ n: JSONNode) throws(TokenizerError) -> DecoderStep {
        let typeNode = try n.required("type")
        let type = try typeNode.string()
        switch type {
        case "ByteLevel": return .byteLevel
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Replace":
            let p = try n.required("pattern")
            guard let s = p["String"] else { throw p.unsupported("a regex pattern (only {\"String\": ...})") }
            return .replace(pattern: try s.string(), content: try n.required("content").string())
        case "Strip":
            let c = try n.required("content").string()
            guard let scalar = c.unicodeScalars.first, c.unicodeScalars.count == 1 else {
                throw try n.required("content").invalid("expected one character")
            }
            return .strip(content: scalar, start: try n["start"]?.int() ?? 0, stop: try n["stop"]?.int() ?? 0)
        case "Metaspace":
            let rep = try n["replacement"]?.string() ?? "\u{2581}"
            var scheme: PreTokenizerStep.PrependScheme = .always
            if let s = n["prepend_scheme"] {
                scheme = try s.string() == "never" ? .never : try s.string() == "first" ? .first : .always
            } else if let a = n["add_prefix_space"], try !a.bool() { scheme = .never }
            return .metaspace(replacement: rep.unicodeScalars.first ?? "\u{2581}", prependScheme: scheme)
        case "Sequence":
            var steps: [DecoderStep] = []
            for s in try n.required("decoders").array() { steps.append(try loadDecoder(s)) }
            return .sequence(steps)
        default:
            throw typeNode.unsupported("\"\(type)\"")
        }
    }

    static func loadPostProcessor(_ n: JSONNode, _ lookup: (String) -> Int32?) throws(TokenizerError) -> PostProcessor {
        let typeNode = try n.required("type")
        let type = try typeNode.string()
        switch type {
        case "ByteLevel": return .none
        case "Sequence":
            var steps: [PostProcessor] = []
            for s in try n.required("processors").array() { steps.append(try loadPostProcessor(s, lookup)) }
            return .sequence(steps)
        case "TemplateProcessing":
            var specials: [String: [Int32]] = [:]
            if let st = n["special_tokens"] {
                for (name, node) in try st.members() {
                    specials[name] = try node.required("ids").array().map { node throws(TokenizerError) in
                        guard let v = Int32(exactly: try node.int()), v >= 0 else { throw node.invalid("bad token id") }
                        return v
                    }
                }
            }
            var items: [PostProcessor.Item] = []
            for item in try n.required("single").array() {
                if let sp = item["SpecialToken"] {
                    let name = try sp.required("id").string()
                    guard let ids = specials[name] ?? lookup(name).map({ [$0] }) else {
                        throw sp.invalid("special token \(name.debugDescription) is not in special_tokens")
                    }
                    items.append(.special(ids))
                } else if item["Sequence"] != nil {
                    items.append(.sequence)
                } else {
                    throw item.invalid("expected SpecialToken or Sequence")
                }
            }
            return .template(items)
        case "RobertaProcessing", "BertProcessing":
            func pair(_ key: String) throws(TokenizerError) -> Int32 {
                let p = try n.required(key).array()
                guard p.count == 2 else { throw try n.required(key).invalid("expected [token, id]") }
                guard let v = Int32(exactly: try p[1].int()), v >= 0 else { throw p[1].invalid("bad token id") }
                return v
            }
            return .template([.special([try pair("cls")]), .sequence, .special([try pair("sep")])])
        default:
            throw typeNode.unsupported("\"\(type)\"")
        }
    }

    /// bos_token / eos_token (string or {"content": ...}) and chat_template (string, or the "default" entry of a
    /// list of {"name", "template"}) of a tokenizer_config.json; missing file -> nils.
    static func loadConfigTokens(_ url: URL) -> (bos: String?, eos: String?, chatTemplate: String?) {
        guard let data = try? Data(contentsOf: url), let doc = try? JSONDocument(bytes: [UInt8](data)) else {
            return (nil, nil, nil)
        }
        let root = JSONNode(doc: doc, value: doc.root, path: "", file: url.path)
        func token(_ key: String) -> String? {
            guard let n = root[key] else { return nil }
            if let s = try? n.string() { return s }
            return try? n["content"]?.string()
        }
        var template: String? = nil
        if let t = root["chat_template"] {
            if let s = try? t.string() {
                template = s
            } else if let list = try? t.array() {
                template = list.first { (try? $0["name"]?.string()) == "default" }.flatMap { try? $0["template"]?.string() }
            }
        }
        return (token("bos_token"), token("eos_token"), template)
    }
}

/// Per-index result slots for `encodeBatch`. @unchecked Sendable: the slots live in one buffer allocated up
/// front (never reallocated); each index is written by exactly one worker (index i belongs to worker
/// i % workers) and everything is read only after `concurrentPerform` returns.
private final class BatchResults: @unchecked Sendable {
    private let slots: UnsafeMutableBufferPointer<[Int32]>
    init(count: Int) {
        slots = .allocate(capacity: count)
        slots.initialize(repeating: [])
    }
    deinit {
        slots.baseAddress?.deinitialize(count: slots.count)
        slots.deallocate()
    }
    func set(_ i: Int, _ v: [Int32]) { slots[i] = v }
    var values: [[Int32]] { Array(slots) }
}
