/// How much of each decoder layer's forward an arena keeps. Ordered: an arena can serve any use at or below its own.
enum LayerStorage: Int, Comparable {
    /// One set of layer tensors reused by every layer, the residual stream included: inference (nothing is kept
    /// for a backward), so a forward's activation memory does not grow with the layer count.
    case shared = 0
    /// Every layer's input (the residual stream entering it) kept, everything else one shared set: activation
    /// checkpointing, the backward recomputes each layer from its input (`Transformer.recomputeLayer`).
    case inputs = 1
    /// Every layer's tensors kept: the plain training path.
    case full = 2
    static func < (a: LayerStorage, b: LayerStorage) -> Bool { a.rawValue < b.rawValue }
}

/// The forward pass's saved tensors and the backward pass's scratch, carved out of one arena sized for a token
/// capacity. Reallocated only when a batch needs more rows (or more storage) than any previous one (no
/// allocation per call after warm-up). Shapes use N = token capacity, C = hidden, QD = heads·head_dim,
/// KVD = kv heads·head_dim, F = intermediate, R = logit-row capacity. Logits are not here: the training and
/// scoring paths never materialise them (`lmHeadForward`), and `Transformer.forward` keeps its (R, V) buffer apart.
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
    let storage: LayerStorage
    /// Backward scratch exists (storage ≥ .inputs).
    var training: Bool { storage >= .inputs }
    /// Layers alias one set of intermediate tensors: a backward must recompute each layer first.
    var recomputes: Bool { storage < .full }
    let arena: FloatBuffer
    var layers: [Layer] = []
    var xFinal: UnsafeMutablePointer<Float>      // (N, C)
    var lnf: UnsafeMutablePointer<Float>         // (N, C)
    var rstdf: UnsafeMutablePointer<Float>       // (N)
    var compact: UnsafeMutablePointer<Float>     // (R, C) lnf rows gathered for a logit subset
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

    /// Floats an arena of these dimensions holds (for memory estimates and tests).
    static func floatCount(config cfg: ModelConfig, tokens n: Int, rows r: Int, storage: LayerStorage) -> Int {
        let c = cfg.hiddenSize, qd = cfg.qDim, kvd = cfg.kvDim, f = cfg.intermediateSize, nh = cfg.numAttentionHeads
        let layerSet = pad(n * c) * 3 + pad(n) * 2 + pad(n * qd) * 2 + pad(n * kvd) * 2 + pad(n * nh) + pad(n * f) * 3
        let layers: Int
        switch storage {
        case .shared: layers = pad(n * c) + layerSet
        case .inputs: layers = pad(n * c) * cfg.numHiddenLayers + layerSet
        case .full: layers = (pad(n * c) + layerSet) * cfg.numHiddenLayers
        }
        let backward = storage >= .inputs
            ? pad(n * c) * 2 + pad(r * c) + pad(n * qd) * 2 + pad(n * kvd) * 2 + pad(n * f) * 3 : 0
        return layers + pad(n * c) * 2 + pad(n) + pad(r * c) + backward
    }

    static func pad(_ x: Int) -> Int { (x + 15) / 16 * 16 }

    init(config cfg: ModelConfig, tokens n: Int, rows r: Int, storage: LayerStorage) {
        tokenCapacity = n
        rowCapacity = r
        self.storage = storage
        let c = cfg.hiddenSize, qd = cfg.qDim, kvd = cfg.kvDim, f = cfg.intermediateSize, nh = cfg.numAttentionHeads
        arena = FloatBuffer(count: Self.floatCount(config: cfg, tokens: n, rows: r, storage: storage))
        var cursor = arena.pointer
        func take(_ count: Int) -> UnsafeMutablePointer<Float> {
            let p = cursor
            cursor += Self.pad(count)
            return p
        }
        func layerSet(xIn: UnsafeMutablePointer<Float>) -> Layer {
            Layer(xIn: xIn, ln1: take(n * c), rstd1: take(n), q: take(n * qd), k: take(n * kvd),
                  v: take(n * kvd), att: take(n * qd), lse: take(n * nh), res1: take(n * c),
                  ln2: take(n * c), rstd2: take(n), gate: take(n * f), up: take(n * f), h: take(n * f))
        }
        switch storage {
        case .full:
            for _ in 0..<cfg.numHiddenLayers { layers.append(layerSet(xIn: take(n * c))) }
        case .inputs:
            let inputs = (0..<cfg.numHiddenLayers).map { _ in take(n * c) }
            let one = layerSet(xIn: inputs[0])
            for x in inputs { var l = one; l.xIn = x; layers.append(l) }
        case .shared:
            // The residual stream too: layer l's output overwrites its input once nothing reads it any more.
            layers = [Layer](repeating: layerSet(xIn: take(n * c)), count: cfg.numHiddenLayers)
        }
        xFinal = take(n * c); lnf = take(n * c); rstdf = take(n); compact = take(r * c)
        if storage >= .inputs {
            dX = take(n * c); dLn = take(n * c); dCompact = take(r * c); dAtt = take(n * qd); dQ = take(n * qd)
            dK = take(n * kvd); dV = take(n * kvd); dH = take(n * f); dGate = take(n * f); dUp = take(n * f)
        } else {
            // Inference-only arena: backward scratch is never touched (backward reallocates with more storage).
            let none = arena.pointer
            dX = none; dLn = none; dCompact = none; dAtt = none; dQ = none; dK = none; dV = none
            dH = none; dGate = none; dUp = none
        }
        precondition(cursor - arena.pointer <= arena.count, "Activations: arena overflow")
    }
}
