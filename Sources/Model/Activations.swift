/// The forward pass's saved tensors and the backward pass's scratch, carved out of one arena sized for a token
/// capacity. Reallocated only when a batch needs more rows than any previous one (no allocation per call after
/// warm-up). Shapes use N = token capacity, C = hidden, QD = heads·head_dim, KVD = kv heads·head_dim,
/// F = intermediate, V = vocab, R = logit-row capacity.
final class Activations {
    struct Layer {
        var xIn: UnsafeMutablePointer<Float>     // (N, C) residual stream entering the layer
        var ln1: UnsafeMutablePointer<Float>     // (N, C)
        var rstd1: UnsafeMutablePointer<Float>   // (N)
        var q: UnsafeMutablePointer<Float>       // (N, QD) after RoPE
        var k: UnsafeMutablePointer<Float>       // (N, KVD) after RoPE
        var v: UnsafeMutablePointer<Float>       // (N, KVD)
        var att: UnsafeMutablePointer<Float>     // (N, QD) attention output (before o_proj)
        var lse: UnsafeMutablePointer<Float>     // (N, NH)
        var res1: UnsafeMutablePointer<Float>    // (N, C) residual after attention
        var ln2: UnsafeMutablePointer<Float>     // (N, C)
        var rstd2: UnsafeMutablePointer<Float>   // (N)
        var gate: UnsafeMutablePointer<Float>    // (N, F)
        var up: UnsafeMutablePointer<Float>      // (N, F)
        var h: UnsafeMutablePointer<Float>       // (N, F) silu(gate)·up
    }
    let tokenCapacity: Int
    let rowCapacity: Int
    let arena: FloatBuffer
    var layers: [Layer] = []
    var xFinal: UnsafeMutablePointer<Float>      // (N, C)
    var lnf: UnsafeMutablePointer<Float>         // (N, C)
    var rstdf: UnsafeMutablePointer<Float>       // (N)
    var compact: UnsafeMutablePointer<Float>     // (R, C) lnf rows gathered for a logit subset
    var logits: UnsafeMutablePointer<Float>      // (R, V)
    // Backward scratch.
    var dX: UnsafeMutablePointer<Float>          // (N, C)
    var dLn: UnsafeMutablePointer<Float>         // (N, C)
    var dCompact: UnsafeMutablePointer<Float>    // (R, C)
    var dAtt: UnsafeMutablePointer<Float>        // (N, QD)
    var dQ: UnsafeMutablePointer<Float>          // (N, QD)
    var dK: UnsafeMutablePointer<Float>          // (N, KVD)
    var dV: UnsafeMutablePointer<Float>          // (N, KVD)
    var dH: UnsafeMutablePointer<Float>          // (N, F)
    var dGate: UnsafeMutablePointer<Float>       // (N, F)
    var dUp: UnsafeMutablePointer<Float>         // (N, F)

    init(config cfg: ModelConfig, tokens n: Int, rows r: Int, training: Bool) {
        tokenCapacity = n
        rowCapacity = r
        let c = cfg.hiddenSize, qd = cfg.qDim, kvd = cfg.kvDim, f = cfg.intermediateSize, nh = cfg.numAttentionHeads
        func pad(_ x: Int) -> Int { (x + 15) / 16 * 16 }
        let perLayer = pad(n * c) * 4 + pad(n) * 2 + pad(n * qd) * 2 + pad(n * kvd) * 2 + pad(n * nh) + pad(n * f) * 3
        var total = perLayer * cfg.numHiddenLayers + pad(n * c) * 2 + pad(n) + pad(r * c) + pad(r * cfg.vocabSize)
        let backward = training
            ? pad(n * c) * 2 + pad(r * c) + pad(n * qd) * 2 + pad(n * kvd) * 2 + pad(n * f) * 3 : 0
        total += backward
        arena = FloatBuffer(count: total)
        var cursor = arena.pointer
        func take(_ count: Int) -> UnsafeMutablePointer<Float> {
            let p = cursor
            cursor += pad(count)
            return p
        }
        for _ in 0..<cfg.numHiddenLayers {
            layers.append(Layer(xIn: take(n * c), ln1: take(n * c), rstd1: take(n), q: take(n * qd), k: take(n * kvd),
                                v: take(n * kvd), att: take(n * qd), lse: take(n * nh), res1: take(n * c),
                                ln2: take(n * c), rstd2: take(n), gate: take(n * f), up: take(n * f), h: take(n * f)))
        }
        xFinal = take(n * c); lnf = take(n * c); rstdf = take(n); compact = take(r * c); logits = take(r * cfg.vocabSize)
        if training {
            dX = take(n * c); dLn = take(n * c); dCompact = take(r * c); dAtt = take(n * qd); dQ = take(n * qd)
            dK = take(n * kvd); dV = take(n * kvd); dH = take(n * f); dGate = take(n * f); dUp = take(n * f)
        } else {
            // Inference-only arena: backward scratch is never touched (backward reallocates with training: true).
            let none = arena.pointer
            dX = none; dLn = none; dCompact = none; dAtt = none; dQ = none; dK = none; dV = none
            dH = none; dGate = none; dUp = none
        }
        self.training = training
    }
    let training: Bool
}
