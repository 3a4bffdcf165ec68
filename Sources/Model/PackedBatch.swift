/// Variable-length sequences concatenated without padding: sequence b is rows seqStarts[b] ..< seqStarts[b+1]
/// of `tokens`, and `positions` (RoPE positions, normally 0, 1, … within each sequence) has one entry per row.
public struct PackedBatch: Sendable, Equatable {
    public var tokens: [Int32]        // (N)
    public var seqStarts: [Int]       // (B+1), seqStarts[0] == 0, seqStarts[B] == N
    public var positions: [Int32]     // (N)

    public var tokenCount: Int { tokens.count }
    public var sequenceCount: Int { seqStarts.count - 1 }

    /// Packs sequences; positions restart at 0 for each.
    public init(sequences: [[Int32]]) {
        tokens = []
        seqStarts = [0]
        positions = []
        for s in sequences {
            tokens += s
            positions += (0..<s.count).map { Int32($0) }
            seqStarts.append(tokens.count)
        }
    }

    public init(tokens: [Int32], seqStarts: [Int], positions: [Int32]) {
        self.tokens = tokens; self.seqStarts = seqStarts; self.positions = positions
    }

    /// Checks the packing against a model (token ids < vocab, positions < max, starts ascending).
    public func validate(vocabSize: Int, maxPositions: Int) throws {
        guard seqStarts.first == 0, seqStarts.last == tokens.count, positions.count == tokens.count else {
            throw ModelError.invalidInput("PackedBatch: seqStarts must run from 0 to \(tokens.count) and positions must have \(tokens.count) entries (got seqStarts \(seqStarts.prefix(4))…\(seqStarts.last ?? -1), \(positions.count) positions)")
        }
        for b in 0..<max(0, seqStarts.count - 1) where seqStarts[b + 1] < seqStarts[b] {
            throw ModelError.invalidInput("PackedBatch: seqStarts decreases at sequence \(b)")
        }
        if let i = tokens.firstIndex(where: { $0 < 0 || Int($0) >= vocabSize }) {
            throw ModelError.invalidInput("PackedBatch: token \(tokens[i]) at row \(i) not in 0..<\(vocabSize)")
        }
        if let i = positions.firstIndex(where: { $0 < 0 || Int($0) >= maxPositions }) {
            throw ModelError.invalidInput("PackedBatch: position \(positions[i]) at row \(i) not in 0..<\(maxPositions)")
        }
    }
}
