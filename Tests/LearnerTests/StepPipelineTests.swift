import Foundation
import Testing
import Wire
@testable import Learner
import Scheduling

/// StepPipeline (the learner's task → step bookkeeping) and its use with TaskLedger, without sockets: steps open
/// max_lag ahead, train in order and complete only with every task answered or quarantined.
@Suite struct StepPipelineTests {
    static func group(_ task: UInt64, actor: String = "A", version: UInt64 = 1) -> RolloutGroup {
        let c = Completion(tokens: [7], logprobs: [-1], selfCertainty: [2], reward: 2, finishReason: .eos)
        return RolloutGroup(taskId: task, actorId: actor, weightVersion: version, completions: [c, c])
    }

    /// Opens what `stepsToOpen` says, registering `perStep` task ids per step (ids 100·s + k).
    static func open(_ p: inout StepPipeline) -> [Int] {
        let r = p.stepsToOpen()
        for s in r {
            for k in 0..<p.config.promptsPerStep {
                p.register(taskId: UInt64(100 * s + k), .init(step: s, promptIndex: s * p.config.promptsPerStep + k,
                                                              promptId: "train:\(s * 10 + k)", tokens: [1, Int32(k)]))
            }
        }
        return Array(r)
    }

    @Test func stepsOpenMaxLagAheadAndTrainInOrder() throws {
        var p = StepPipeline(config: .init(steps: 4, promptsPerStep: 2, maxLag: 1))
        #expect(Self.open(&p) == [0, 1])
        #expect(Self.open(&p) == [], "nothing more until step 0 is trained")
        // Step 1's groups arrive first (out of order): nothing trains until step 0 is complete.
        p.accepted(Self.group(100)); p.accepted(Self.group(101))
        #expect(try p.nextToTrain() == nil)
        p.accepted(Self.group(1))
        #expect(try p.nextToTrain() == nil, "one of two groups of step 0")
        p.accepted(Self.group(0))
        let t0 = try #require(try p.nextToTrain())
        #expect(t0.step == 0 && t0.groups.map(\.promptIndex) == [0, 1], "in prompt order")
        #expect(try p.nextToTrain() == nil, "one step at a time")
        #expect(Self.open(&p) == [], "step 2 opens when step 0 is done, not when it starts")
        p.finishedTraining()
        #expect(Self.open(&p) == [2])
        let t1 = try #require(try p.nextToTrain())
        #expect(t1.step == 1 && t1.groups.map(\.taskId) == [100, 101])
        #expect(p.accepted(Self.group(100)) == nil, "a task whose step was handed out is unknown")
        p.finishedTraining()
        #expect(Self.open(&p) == [3])
        for id: UInt64 in [200, 201, 300, 301] { p.accepted(Self.group(id)) }
        _ = try p.nextToTrain(); p.finishedTraining()
        _ = try p.nextToTrain(); p.finishedTraining()
        let none = try p.nextToTrain()
        #expect(p.isComplete && p.completedSteps == 4 && none == nil)
        #expect(p.trainedPrompts == Dictionary(uniqueKeysWithValues: (0..<8).map { ($0, 1) }))
    }

    /// A group `verify_rewards` dropped from the step it was handed in is not counted as trained (the learner's
    /// trained-prompt tally, which scripts/chaos and the summary check, stays true).
    @Test func aGroupDroppedByVerificationIsNotCountedAsTrained() throws {
        var p = StepPipeline(config: .init(steps: 1, promptsPerStep: 2, maxLag: 0))
        _ = Self.open(&p)
        p.accepted(Self.group(0)); p.accepted(Self.group(1))
        _ = try #require(try p.nextToTrain())
        p.untrained(promptIndex: 1)
        p.untrained(promptIndex: 5)  // never trained: nothing to take back
        p.finishedTraining()
        #expect(p.trainedPrompts == [0: 1])
    }

    @Test func maxLagZeroOpensOneStepAtATimeAndResumeStartsAtTheCheckpoint() throws {
        var p = StepPipeline(config: .init(steps: 5, startStep: 3, promptsPerStep: 1, maxLag: 0))
        #expect(p.completedSteps == 3)
        #expect(Self.open(&p) == [3])
        #expect(Self.open(&p) == [])
        p.accepted(Self.group(300))
        #expect(try p.nextToTrain()?.step == 3)
        p.finishedTraining()
        #expect(Self.open(&p) == [4])
        #expect(p.trainedPrompts == [3: 1], "prompt index = step · P + k, from the resumed step on")
    }

    /// Replayed with the real TaskLedger: task X fails on A, is re-issued, fails on B, is quarantined; its step
    /// trains with the other group; the quarantined prompt is never trained and listed with its id.
    @Test func quarantinedTaskCompletesItsStepWithoutIt() throws {
        var ledger = TaskLedger(config: .init(groupSize: 2, heartbeatTimeoutMs: 1000, maxLag: 1))
        var p = StepPipeline(config: .init(steps: 2, promptsPerStep: 2, maxLag: 0))
        for s in p.stepsToOpen() {
            for k in 0..<2 {
                let id = ledger.submit(WorkItem(taskId: 0, promptId: "train:\(k + 1)", promptTokens: [1], groupSize: 2))
                p.register(taskId: id, .init(step: s, promptIndex: k, promptId: "train:\(k + 1)", tokens: [1]))
            }
        }
        ledger.hello(actorId: "A", now: 0); ledger.hello(actorId: "B", now: 0)
        ledger.addCredits(actorId: "A", credits: 1, now: 0); ledger.addCredits(actorId: "B", credits: 1, now: 0)
        let first = ledger.dispatch(now: 0, weightVersion: 1)
        let bad = first[0].item.taskId, good = first[1].item.taskId
        #expect(ledger.fail(taskId: bad, actorId: "A", now: 5) == .reissued)
        #expect(ledger.accept(Self.group(good, actor: "B"), now: 6, weightVersion: 1).status == .accepted)
        p.accepted(Self.group(good, actor: "B"))
        #expect(try p.nextToTrain() == nil, "the failed task is still open")
        ledger.addCredits(actorId: "B", credits: 1, now: 7)
        #expect(ledger.dispatch(now: 7, weightVersion: 1).map(\.item.taskId) == [bad])
        guard case .quarantined(let on) = ledger.fail(taskId: bad, actorId: "B", now: 8) else {
            Issue.record("not quarantined"); return
        }
        #expect(on == ["A", "B"])
        #expect(p.quarantine(taskId: bad)?.promptId == "train:1")
        let t = try #require(try p.nextToTrain())
        #expect(t.groups.map(\.taskId) == [good])
        #expect(p.trainedPrompts == [1: 1] && p.quarantined.map(\.promptIndex) == [0])
    }

    @Test func aStepWhoseEveryPromptIsQuarantinedIsAnError() throws {
        var p = StepPipeline(config: .init(steps: 1, promptsPerStep: 2, maxLag: 0))
        _ = Self.open(&p)
        p.quarantine(taskId: 0); p.quarantine(taskId: 1)
        let e = #expect(throws: StepPipeline.Error.self) { try p.nextToTrain() }
        #expect(e?.description.contains("train:0, train:1") == true)
    }

    struct Refused: Error {}

    /// The learner's training thread, once stopped and its thread ended, frees its `TrainerThread` (it used to store
    /// the `Thread`, whose block holds the trainer: a cycle LeakSanitizer reported in every learner process).
    @Test func aStoppedTrainerThreadIsFreed() throws {
        weak var weakTrainer: TrainerThread?
        do {
            let t = TrainerThread()
            weakTrainer = t
            t.submit { throw Refused() }
            var result: Result<TrainerThread.Output, Error>?
            let deadline = Date().addingTimeInterval(30)
            while result == nil && Date() < deadline { result = t.poll(); Thread.sleep(forTimeInterval: 0.005) }
            #expect(throws: Refused.self) { try #require(result).get() }
            t.stop()
        }
        let deadline = Date().addingTimeInterval(30)
        while weakTrainer != nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(weakTrainer == nil, "the stopped TrainerThread is still alive")
    }
}
