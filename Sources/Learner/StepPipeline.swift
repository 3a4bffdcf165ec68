import Wire

/// The learner's task → step bookkeeping as pure logic (no sockets, no clock, no threads), next to `TaskLedger`:
/// which steps' tasks may exist, which step each task belongs to, the accepted groups of each step, when a step is
/// complete and may be trained, and what was trained. `LearnerServer` drives it; `StepPipelineTests` replays it.
///
/// Steps are 0-based; `startStep` steps are already done (resume). Step s's tasks are opened once
/// s ≤ completed + maxLag, so with maxLag 0 every group is sampled with the weights it trains. A step is complete
/// when each of its `promptsPerStep` tasks has an accepted group or was quarantined; steps train in order, one at a
/// time. Prompt index = s · promptsPerStep + k, the position in the run's prompt schedule.
public struct StepPipeline: Sendable {
    public struct Config: Sendable, Equatable {
        public var steps: Int
        public var startStep: Int
        public var promptsPerStep: Int
        public var maxLag: Int
        public init(steps: Int, startStep: Int = 0, promptsPerStep: Int, maxLag: Int) {
            self.steps = steps; self.startStep = startStep; self.promptsPerStep = promptsPerStep; self.maxLag = maxLag
        }
    }

    /// What the learner knows of a task beyond the ledger: its step and place in the schedule.
    public struct TaskInfo: Sendable, Equatable {
        public var step: Int
        /// s · promptsPerStep + k.
        public var promptIndex: Int
        /// The dataset's id of the prompt (its `id` field, or `file:line`).
        public var promptId: String
        public var tokens: [Int32]
        public init(step: Int, promptIndex: Int, promptId: String, tokens: [Int32]) {
            self.step = step; self.promptIndex = promptIndex; self.promptId = promptId; self.tokens = tokens
        }
    }

    public struct Error: Swift.Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    public let config: Config
    public private(set) var completedSteps: Int
    /// Steps whose tasks exist (opened): `startStep ..< openedSteps`.
    public private(set) var openedSteps: Int
    /// The step handed to the trainer and not yet finished.
    public private(set) var training: Int?
    /// Prompt index → times it went into an optimizer step (each must be 1).
    public private(set) var trainedPrompts: [Int: Int] = [:]
    /// Quarantined prompts, in the order they were given up.
    public private(set) var quarantined: [TaskInfo] = []

    private var tasks: [UInt64: TaskInfo] = [:]
    private var groups: [Int: [AcceptedGroup]] = [:]
    /// Tasks per step resolved without a group (quarantined).
    private var dropped: [Int: Int] = [:]

    public init(config: Config) {
        self.config = config
        completedSteps = config.startStep
        openedSteps = config.startStep
    }

    /// True once every step is trained.
    public var isComplete: Bool { completedSteps >= config.steps }
    /// Accepted groups not yet handed to training (for `rlif status`).
    public var groupsWaiting: Int { groups.values.reduce(0) { $0 + $1.count } }

    /// The steps whose tasks should be created now (possibly empty); they count as opened from here on.
    public mutating func stepsToOpen() -> Range<Int> {
        let end = min(config.steps, completedSteps + config.maxLag + 1)
        guard openedSteps < end else { return openedSteps..<openedSteps }
        defer { openedSteps = end }
        return openedSteps..<end
    }

    /// Records a task of an opened step (its id from the ledger).
    public mutating func register(taskId: UInt64, _ info: TaskInfo) {
        precondition(info.step >= completedSteps && info.step < openedSteps, "task \(taskId) of step \(info.step) outside the opened steps \(completedSteps)..<\(openedSteps)")
        tasks[taskId] = info
    }

    public func info(_ taskId: UInt64) -> TaskInfo? { tasks[taskId] }

    /// The ledger accepted `group` (the first acceptable group of its task): keep it for its step. Returns nil for
    /// a task this pipeline does not know (never registered, or its step was already trained).
    @discardableResult
    public mutating func accepted(_ group: RolloutGroup) -> AcceptedGroup? {
        guard let info = tasks.removeValue(forKey: group.taskId) else { return nil }
        let a = AcceptedGroup(taskId: group.taskId, step: info.step, promptIndex: info.promptIndex,
                              promptTokens: info.tokens, group: group)
        groups[info.step, default: []].append(a)
        return a
    }

    /// The ledger quarantined the task: its step goes on without it. Returns the task's info (for the log).
    @discardableResult
    public mutating func quarantine(taskId: UInt64) -> TaskInfo? {
        guard let info = tasks.removeValue(forKey: taskId) else { return nil }
        dropped[info.step, default: 0] += 1
        quarantined.append(info)
        return info
    }

    /// Groups accepted so far for `step`, and tasks of it still open (neither answered nor quarantined).
    public func progress(step: Int) -> (accepted: Int, quarantined: Int, open: Int) {
        let a = groups[step]?.count ?? 0, q = dropped[step] ?? 0
        return (a, q, step < openedSteps ? config.promptsPerStep - a - q : config.promptsPerStep)
    }

    /// When nothing is training and the next step is complete: hands it out (groups in prompt order) and marks it
    /// training. Throws when every task of the step was quarantined (nothing to train on: the data is unusable).
    public mutating func nextToTrain() throws(Error) -> (step: Int, groups: [AcceptedGroup])? {
        guard training == nil, completedSteps < config.steps else { return nil }
        let s = completedSteps
        let p = progress(step: s)
        guard s < openedSteps, p.open == 0 else { return nil }
        guard p.accepted > 0 else {
            let ids = quarantined.filter { $0.step == s }.map(\.promptId)
            throw Error(description: "every prompt of step \(s + 1) was quarantined (\(ids.joined(separator: ", "))): nothing to train on")
        }
        let g = (groups.removeValue(forKey: s) ?? []).sorted { $0.promptIndex < $1.promptIndex }
        dropped[s] = nil
        training = s
        for x in g { trainedPrompts[x.promptIndex, default: 0] += 1 }
        return (s, g)
    }

    /// The trainer dropped the group of `promptIndex` from the step it was handed in (`verify_rewards`: the
    /// learner's forward contradicted the actor's values): it was not trained after all.
    public mutating func untrained(promptIndex: Int) {
        guard let n = trainedPrompts[promptIndex] else { return }
        trainedPrompts[promptIndex] = n > 1 ? n - 1 : nil
    }

    /// The trainer finished the step handed out by `nextToTrain`.
    public mutating func finishedTraining() {
        precondition(training == completedSteps, "finishedTraining without a step in training")
        training = nil
        completedSteps += 1
    }
}
