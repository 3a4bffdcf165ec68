import Foundation
import Kernels
import Model
import SafeTensors
import TestSupport

/// The fixture batch of `<name>-expected.safetensors` as a PackedBatch.
func fixtureBatch(_ exp: SafeTensorsFile) throws -> PackedBatch {
    let tokens = try exp.ints("tokens").map { Int32($0) }
    let starts = try exp.ints("seq_starts").map { Int($0) }
    let seqs = (0..<(starts.count - 1)).map { Array(tokens[starts[$0]..<starts[$0 + 1]]) }
    return PackedBatch(sequences: seqs)
}

/// Next-token targets for a packed batch: row i predicts token i+1 of its sequence, −1 at each sequence end.
func nextTokenTargets(_ batch: PackedBatch) -> [Int32] {
    var t = [Int32](repeating: -1, count: batch.tokenCount)
    for b in 0..<batch.sequenceCount {
        for i in batch.seqStarts[b]..<max(batch.seqStarts[b], batch.seqStarts[b + 1] - 1) { t[i] = batch.tokens[i + 1] }
    }
    return t
}

/// Mean next-token cross-entropy through the Kernels ops; returns (loss, dLogits for the mean).
func meanCrossEntropy(_ logits: UnsafePointer<Float>, _ targets: [Int32], v: Int) -> (Double, [Float]) {
    let n = targets.count
    var losses = [Float](repeating: 0, count: n), lse = [Float](repeating: 0, count: n)
    crossEntropyForward(&losses, &lse, logits, targets, n: n, v: v)
    let count = crossEntropyCount(targets, n: n)
    let loss = losses.reduce(0.0) { $0 + Double($1) } / Double(count)
    var d = [Float](repeating: 0, count: n * v)
    let dl = [Float](repeating: 1 / Float(count), count: n)
    crossEntropyBackward(&d, dl, logits, lse, targets, n: n, v: v)
    return (loss, d)
}

/// Mean next-token cross-entropy with every step in Double (for finite differences).
func meanCrossEntropyDouble(_ logits: UnsafeBufferPointer<Float>, _ targets: [Int32], v: Int) -> Double {
    var total = 0.0, count = 0
    for (i, t) in targets.enumerated() where t >= 0 {
        let row = logits.baseAddress! + i * v
        var m = -Double.infinity
        for j in 0..<v { m = max(m, Double(row[j])) }
        var s = 0.0
        for j in 0..<v { s += Foundation.exp(Double(row[j]) - m) }
        total += m + Foundation.log(s) - Double(row[Int(t)])
        count += 1
    }
    return total / Double(count)
}

func loadTiny(_ name: String) throws -> (Transformer, SafeTensorsFile) {
    let model = try Transformer.load(directory: Fixtures.url("model/\(name)"))
    let exp = try SafeTensorsFile(contentsOf: Fixtures.url("model/\(name)-expected.safetensors"))
    return (model, exp)
}
