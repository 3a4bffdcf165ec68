import ArgumentParser
import Kernels
import Transport
import Wire

/// The `rlif` command. Subcommands appear here as they are built; none is a placeholder.
@main
struct Rlif: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rlif",
        abstract: "INTUITOR: reinforcement learning from internal feedback (self-certainty GRPO) on CPU.",
        subcommands: [Train.self, LearnerCommand.self, ActorCommand.self, Generate.self, Score.self, Eval.self, SFT.self, MergeCommand.self, ExportAdapter.self, TokenizeCommand.self, TemplateCommand.self, Convert.self, Report.self, StatusCommand.self, Info.self, Bench.self, Keygen.self],
        defaultSubcommand: Train.self
    )
}

/// `rlif info`: what this build links against, for bug reports and for checking a machine before a run.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print build, library and protocol versions.")

    @Flag(help: "One JSON object (snake_case keys).") var json = false

    func run() throws {
        if json {
            print(try jsonLine(["wire_protocol": "rlif.v1", "protocol_version": Int(protocolVersion),
                                "libzmq": "\(zmqVersion)", "openblas_threads": Gemm.threads] as [String: Any]))
            return
        }
        print("rlif wire protocol: rlif.v1 (version \(protocolVersion))")
        print("libzmq: \(zmqVersion)")
        print("OpenBLAS threads: \(Gemm.threads)")
    }
}
