import Foundation
import Logging
import Model
import Sampling

/// `rlif train --single-process`: sample → self-certainty → GRPO update, all in this process. The policy
/// itself decodes (KV cache) and then trains (full forward/backward); the schedule of prompts, seeds and
/// updates is the one the distributed learner follows, so both modes train on the same data in the same order.
public final class SingleProcessRun {
    public let config: TrainConfig
    public let trainer: GRPOTrainer
    public let formatter: PromptFormatter
    public let dataset: PromptDataset
    public let evalSet: [PromptRecord]
    public let scorer: RewardScorer
    public let output: URL
    let log: Logger
    public var cursor = DataCursor()
    public private(set) var completedSteps = 0
    /// Stop `run()` once this many steps are complete (nil = run to `config.steps`). The LR schedule still spans
    /// `config.steps`, so a run stopped here and `resume()`d later is the run that never stopped (tests use it).
    public var stopAfterSteps: Int? = nil
    /// Set from a SIGINT/SIGTERM handler: the run finishes the step it is in, writes a checkpoint and returns
    /// `.stopped`.
    public let stopFlag = StopFlag()

    /// How `run()` ended.
    public enum Outcome: Equatable, Sendable {
        /// Every step of `config.steps` (or `stopAfterSteps`) is done.
        case finished
        /// Stopped by `stopFlag` after `completedSteps` steps, with a checkpoint of them written.
        case stopped(completedSteps: Int)
    }

    public init(config: TrainConfig, trainer: GRPOTrainer, formatter: PromptFormatter, dataset: PromptDataset,
                evalSet: [PromptRecord], scorer: RewardScorer, output: URL, logger: Logger) {
        self.config = config
        self.trainer = trainer
        self.formatter = formatter
        self.dataset = dataset
        self.evalSet = evalSet
        self.scorer = scorer
        self.output = output
        log = logger
    }

    /// Continues from `<output>/latest` (weights, optimizer, schedule, data cursor).
    public func resume() throws -> Bool {
        guard let dir = try Checkpointing.latest(in: output) else { return false }
        let s = try trainer.resume(from: dir)
        completedSteps = s.completedSteps
        cursor = s.cursor
        log.info("resumed from \(dir.lastPathComponent) at step \(completedSteps)")
        return true
    }

    /// The sampling seed of prompt k of step s: the same in every mode and on resume.
    public static func taskSeed(runSeed: UInt64, step: Int, index: Int) -> UInt64 {
        runSeed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(step) &* 1_000_003 &+ UInt64(index)
    }

    /// Runs the remaining steps; `onStep` sees each record (also appended to metrics.jsonl and, with
    /// `tensorboard: true`, written as scalars to `<output>/tb/events.out.tfevents.*`).
    @discardableResult
    public func run(onStep: ((RunEvent) -> Void)? = nil) throws -> Outcome {
        for name in try Checkpointing.prepare(output: output) {
            log.notice("removed \(name) in \(output.path): left by an interrupted checkpoint save")
        }
        let runRecords = try RunRecords(output: output, config: config, tokenizer: formatter.tokenizer,
                                  resumingAfter: completedSteps)
        let policy = trainer.policy
        if let ad = policy.lora {
            log.notice("LoRA r \(ad.rank), alpha \(ad.config.alpha) on \(ad.targets.map(\.rawValue).joined(separator: ",")): \(ad.parameterCount) trainable parameters, base \(policy.parameterCount) frozen")
        }
        let stop = formatter.stopTokens(modelEOS: policy.config.eosTokenIds)
        let params = SamplingParameters(temperature: config.temperature, topP: config.topP, topK: config.topK,
                                        maxNewTokens: config.maxNewTokens, stopTokenIds: stop,
                                        stopSequences: try formatter.stopSequences(config.stop))
        if completedSteps == 0 && config.evalEvery > 0 && !evalSet.isEmpty {
            try evaluate(step: 0, into: runRecords, onStep: onStep)
        }
        while completedSteps < min(config.steps, stopAfterSteps ?? config.steps) {
            if stopFlag.isSet { return try stopped() }
            let step = completedSteps
            let t0 = Date()
            let records = dataset.prompts(step: step, perStep: config.promptsPerStep)
            cursor = dataset.cursor(afterPrompts: (step + 1) * config.promptsPerStep)
            let requests = records.enumerated().map { k, r in
                GroupRequest(promptTokens: formatter.encode(r.text), groupSize: config.groupSize, parameters: params,
                             seed: Self.taskSeed(runSeed: config.seed, step: step, index: k))
            }
            let sampled = try GroupedSampler.sample(requests, on: policy, maxBatchSequences: config.actorBatchSequences)
            // Sampling and training take turns: each phase's buffers are freed before the other's are allocated,
            // so the peak is the larger phase, not both (MemoryPlan: `Item.phase`).
            policy.releaseDecoding()
            let sampleSeconds = Date().timeIntervalSince(t0)
            var groups: [TrainingGroup] = []
            for (r, (req, g)) in zip(records, zip(requests, sampled)) {
                let completions = try trainer.rewardFeatures(prompt: req.promptTokens, completions: g.completions)
                let rewards = try scorer.score(completions, reference: r.answer)
                var tg = TrainingGroup(promptId: r.id, promptTokens: req.promptTokens, completions: completions,
                                       rewards: rewards, weightVersion: UInt64(step + 1))
                tg.correct = scorer.correctness(completions, reference: r.answer)
                groups.append(tg)
            }
            try runRecords.samples.append(step: step + 1, groups: groups)
            let m = try trainer.train(groups, step: step)
            policy.releaseActivations()
            trainer.reference?.releaseActivations()
            completedSteps += 1
            let generated = sampled.reduce(0) { $0 + $1.generatedTokens }
            let record = StepRecord(step: completedSteps, metrics: m, sampleSeconds: sampleSeconds, epoch: cursor.epoch,
                                    sampleTokensPerSecond: sampleSeconds > 0 ? Double(generated) / sampleSeconds : 0)
            if let reason = m.refusalReason { log.warning("step \(completedSteps): update refused: \(reason)") }
            try runRecords.append(record)
            onStep?(.train(record))
            if config.checkpointEvery > 0 && completedSteps % config.checkpointEvery == 0 || completedSteps == config.steps {
                let dir = try trainer.checkpoint(completedSteps: completedSteps, cursor: cursor, output: output)
                checkpointedSteps = completedSteps
                log.info("checkpoint \(dir.lastPathComponent)")
            }
            if stopFlag.isSet { return try stopped() }
            if config.evalEvery > 0 && !evalSet.isEmpty && (completedSteps % config.evalEvery == 0 || completedSteps == config.steps) {
                try evaluate(step: completedSteps, into: runRecords, onStep: onStep)
            }
        }
        // Stopped early by `stopAfterSteps`: a checkpoint must hold the steps done, whatever `checkpoint_every` is.
        if completedSteps < config.steps { _ = try stopped() }
        return .finished
    }

    private var checkpointedSteps = -1

    /// The stop path (a signal, or `stopAfterSteps`): the step in flight has finished; make sure a checkpoint holds it.
    private func stopped() throws -> Outcome {
        if checkpointedSteps != completedSteps && completedSteps > 0 {
            let dir = try trainer.checkpoint(completedSteps: completedSteps, cursor: cursor, output: output)
            checkpointedSteps = completedSteps
            log.info("checkpoint \(dir.lastPathComponent)")
        }
        return .stopped(completedSteps: completedSteps)
    }

    func evaluate(step: Int, into records: RunRecords, onStep: ((RunEvent) -> Void)?) throws {
        let t0 = Date()
        let report = try Evaluator.run(model: trainer.policy, formatter: formatter,
                                       records: Array(evalSet.prefix(config.evalLimit)), format: .math,
                                       maxNewTokens: config.maxNewTokens, batchSequences: max(config.actorBatchSequences, 1))
        trainer.policy.releaseDecoding()
        let rec = EvalRecord(step: step, report: report, seconds: Date().timeIntervalSince(t0))
        try EvalItemsFile.saveTraining(output: output, step: step, config: config, items: report.items)
        try records.append(rec)
        onStep?(.eval(rec))
    }
}
