// swift-tools-version:6.0
// rlif: INTUITOR (RL from internal feedback) on CPU, actors and a learner over ZeroMQ + protobuf-c.
// Module dependency direction (downward only) is drawn in docs/ARCHITECTURE.md.
import PackageDescription

/// Hot numeric code is compiled for AVX2 + FMA: Swift never fuses multiply-add by itself, and without an FMA
/// target `addingProduct` becomes a per-lane libm call (17x slower). Set RLIF_PORTABLE=1 to build without.
/// (unsafeFlags are fine here: rlif is a root package, never depended on by version.)
let portable = Context.environment["RLIF_PORTABLE"] == "1"
let native: [SwiftSetting] = portable ? [] : [.unsafeFlags(["-Xcc", "-mavx2", "-Xcc", "-mfma", "-Xcc", "-mf16c"])]

let package = Package(
    name: "rlif",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "rlif", targets: ["rlif"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // Prometheus text exposition (the registry and metric types).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // The /metrics HTTP endpoint: FlyingFox has no dependencies (Hummingbird brings SwiftNIO, minutes of build).
        .package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.1"),
    ],
    targets: [
        // C shims: one per native library, each imported by one module only (CBLAS: Kernels, CZeroMQ: Transport,
        // CZlib and CRlifProto: Wire, CTensorBoardProto: TensorBoard) and by ShimTests; checked by
        // ShimTests.cShimsAreImportedOnlyByTheirModule.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZeroMQ", path: "Sources/CZeroMQ", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        // Open MPI, resolved at run time with dlopen (no link-time dependency: only `rlif learner` under
        // mpirun/srun loads it; see Sources/CMPI/include/rlif_mpi.h).
        .target(name: "CMPI", path: "Sources/CMPI", linkerSettings: [.linkedLibrary("dl")]),
        // protobuf-c code generated from Protos/ by scripts/gen-protos (committed; CI checks it is current).
        .target(name: "CRlifProto", path: "Sources/CRlifProto",
                linkerSettings: [.linkedLibrary("protobuf-c")]),
        // protobuf-c code for TensorBoard's Event/Summary subset (Protos/tensorboard), also from scripts/gen-protos.
        .target(name: "CTensorBoardProto", path: "Sources/CTensorBoardProto",
                linkerSettings: [.linkedLibrary("protobuf-c")]),
        // TensorBoard event files (records with masked CRC-32C) of the per-step metrics.
        .target(name: "TensorBoard", dependencies: ["CTensorBoardProto", "SafeTensors"]),

        // Prefetch and spin-wait hints for the kernels (static inline, header only).
        .target(name: "CKernelSupport", path: "Sources/CKernelSupport"),

        // Small helpers every layer uses, one copy each: bfloat16 conversion, SplitMix64, the seeded shuffle,
        // Duration in milliseconds, the JSON string escaper, a coding key for any string.
        .target(name: "Shared", swiftSettings: native),

        // Numeric core.
        .target(name: "Kernels", dependencies: ["CBLAS", "CKernelSupport"], swiftSettings: native),
        // Grouped sampling with per-token log-probs and self-certainty (the INTUITOR reward).
        .target(name: "Sampling", dependencies: ["Kernels", "Model", "Shared"], swiftSettings: native),
        // Training-run plumbing: config (YAML), prompt data, checkpoints, metrics, the GRPO step.
        .target(name: "Training", dependencies: ["Sampling", "Model", "SafeTensors", "GRPO", "Kernels", "Tokenizer", "Answers", "TensorBoard", "Shared", .product(name: "Yams", package: "Yams"),
                                                .product(name: "Logging", package: "swift-log")],
                swiftSettings: native),
        .target(name: "SafeTensors", dependencies: ["Shared"], swiftSettings: native),
        // GGUF (ggml's model container): header, metadata, tensor infos, memory-mapped data, dequantization.
        .target(name: "GGUF", dependencies: ["Shared"], swiftSettings: native),
        .target(name: "Model", dependencies: ["Kernels", "SafeTensors", "GGUF", "Shared"], swiftSettings: native),
        // GRPO math on flat per-token arrays: advantages, policy loss + dL/dlogp, AdamW, schedules, rewards.
        .target(name: "GRPO", dependencies: ["Kernels"], swiftSettings: native),
        // Hugging Face tokenizer.json BPE (byte-level and SentencePiece-style), tokenizers from GGUF metadata, chat templates.
        .target(name: "Tokenizer", dependencies: ["GGUF", "Shared"]),
        // Answer extraction / normalisation / matching for GSM8K and MATH (eval, verifiable rewards).
        .target(name: "Answers"),

        // Distributed plumbing.
        .target(name: "Wire", dependencies: ["CRlifProto", "CZlib", "Shared"]),
        .target(name: "Transport", dependencies: ["CZeroMQ", "Shared"]),
        // The learner's task/actor bookkeeping (credits, deadlines, re-issue, dedupe) as pure logic over Wire types.
        .target(name: "Scheduling", dependencies: ["Wire", "Shared"]),
        // The two processes: an actor (sampling worker) and the learner (dispatcher + GRPO trainer).
        .target(name: "Actor", dependencies: ["Wire", "Transport", "Scheduling", "Model", "Sampling", "Kernels",
                                              .product(name: "Logging", package: "swift-log")], swiftSettings: native),
        .target(name: "Learner", dependencies: ["Wire", "Transport", "Scheduling", "Training", "Model", "GRPO", "Sampling", "Shared",
                                                .product(name: "Logging", package: "swift-log")], swiftSettings: native),
        // The data-parallel learner over MPI: ranks, step broadcast, weight-hash checks (the split and the
        // gradient sums are in Training's DataParallel.swift).
        .target(name: "Distributed", dependencies: ["CMPI", "Learner", "Training", "Model", "Wire",
                                                    .product(name: "Logging", package: "swift-log")]),

        // Child processes with named, prefixed output and how they ended; local mode's supervisor (Foundation only).
        .target(name: "Supervision"),
        // What a running process shows about itself: Prometheus /metrics over a small HTTP server, the learner's
        // status table, the terminal's live progress line.
        .target(name: "Telemetry", dependencies: ["Wire", "Transport", "Training", "Learner", "Actor",
                                                  .product(name: "Prometheus", package: "swift-prometheus"),
                                                  .product(name: "FlyingFox", package: "FlyingFox"),
                                                  .product(name: "FlyingSocks", package: "FlyingFox")]),

        .executableTarget(name: "rlif", dependencies: [
            "Kernels", "Wire", "Transport",
            "Model", "SafeTensors", "GGUF", "GRPO",
            "Tokenizer",
            "Sampling", "Training", "Answers", "Actor", "Learner", "Distributed", "TensorBoard", "Supervision", "Telemetry", "Shared",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ],
        // The embedded default (model, tokenizer, prompts, config) that `rlif train` uses with no arguments.
        resources: [.copy("Resources/default")],
        swiftSettings: native),

        .testTarget(name: "ShimTests", dependencies: ["CBLAS", "CZeroMQ", "CRlifProto"]),
        .testTarget(name: "SamplingTests", dependencies: ["Sampling", "Model", "Kernels", "TestSupport"], swiftSettings: native),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Model", "GRPO", "Kernels", "Sampling", "Tokenizer", "SafeTensors", "Shared", "TestSupport", .product(name: "Logging", package: "swift-log")], swiftSettings: native),
        .testTarget(name: "LearnerTests", dependencies: ["Learner", "Actor", "Training", "Model", "Wire", "Transport", "TestSupport", "Telemetry",
                                                     .product(name: "Logging", package: "swift-log")], swiftSettings: native),
        // Assertion helpers shared by the tests (max abs diff, first bad index, file:line) and fixture paths.
        .target(name: "TestSupport", dependencies: ["Shared"], path: "Tests/TestSupport"),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizer", "GGUF", "TestSupport"]),
        .testTarget(name: "AnswersTests", dependencies: ["Answers", "TestSupport"]),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF", "TestSupport"], swiftSettings: native),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors", "Shared", "TestSupport"], swiftSettings: native),
        .testTarget(name: "ModelTests", dependencies: ["Model", "Kernels", "SafeTensors", "GGUF", "Shared", "TestSupport"], swiftSettings: native),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "Shared", "TestSupport", "SafeTensors"], swiftSettings: native),
        .testTarget(name: "GRPOTests", dependencies: ["GRPO", "TestSupport"], swiftSettings: native),
        .testTarget(name: "WireTests", dependencies: ["Wire", "Shared", "TestSupport", "CRlifProto"]),
        .testTarget(name: "TransportTests", dependencies: ["Transport", "Wire", "TestSupport"]),
        // The built executable as a user runs it (exit codes, signals, command-line errors).
        .testTarget(name: "CLITests", dependencies: ["TestSupport", "TensorBoard", "SafeTensors", "Model"]),
        .testTarget(name: "TensorBoardTests", dependencies: ["TensorBoard", "TestSupport"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "Learner", "Training", "Wire", "TestSupport"]),
        .testTarget(name: "SchedulingTests", dependencies: ["Scheduling", "Wire", "TestSupport"]),
        .testTarget(name: "SupervisionTests", dependencies: ["Supervision", "TestSupport"]),
        .testTarget(name: "TelemetryTests", dependencies: ["Telemetry", "Learner", "Training", "TestSupport"]),
    ]
)

// libFuzzer targets (Fuzz/<name>/), one per decoder of outside input: declared only when RLIF_FUZZ=1, so normal
// builds and CI's release build never see them. scripts/fuzz builds them with `--sanitize fuzzer --sanitize address`
// plus explicit coverage flags (every module instrumented) in its own scratch path (.build-fuzz); docs/SECURITY.md.
if Context.environment["RLIF_FUZZ"] == "1" {
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        ("wire", ["Wire"]),
        ("weights", ["Wire", "Actor"]),
        ("safetensors", ["SafeTensors"]),
        ("gguf", ["GGUF", "Model", "Tokenizer"]),
        ("model-config", ["Model"]),
        ("tokenizer", ["Tokenizer"]),
        ("train-config", ["Training"]),
        ("prompts", ["Training"]),
    ]
    for t in fuzzTargets {
        // -parse-as-library: the file defines LLVMFuzzerTestOneInput, libFuzzer supplies main.
        package.targets.append(.executableTarget(name: "fuzz-\(t.name)", dependencies: t.dependencies,
                                                 path: "Fuzz/\(t.name)",
                                                 swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
        package.products.append(.executable(name: "fuzz-\(t.name)", targets: ["fuzz-\(t.name)"]))
    }
}
