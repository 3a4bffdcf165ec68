/// The post-processor, applied when encoding with `addSpecialTokens`.
indirect enum PostProcessor: Sendable {
    enum Item: Sendable { case special([Int32]), sequence }
    case none
    case template([Item])
    case sequence([PostProcessor])

    func apply(_ ids: [Int32]) -> [Int32] {
        switch self {
        case .none: return ids
        case .template(let items):
            var out: [Int32] = []
            out.reserveCapacity(ids.count + 4)
            for item in items {
                switch item {
                case .special(let s): out += s
                case .sequence: out += ids
                }
            }
            return out
        case .sequence(let steps):
            var t = ids
            for s in steps { t = s.apply(t) }
            return t
        }
    }

    var firstTemplate: PostProcessor {
        switch self {
        case .template: return self
        case .sequence(let steps): return steps.lazy.map(\.firstTemplate).first { if case .none = $0 { false } else { true } } ?? .none
        case .none: return .none
        }
    }
}
