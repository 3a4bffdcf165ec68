import Distributed
import Learner
import Testing
import Training
import Wire

@Suite struct TokenBalancedSplitTests {
    @Test func oneRankOwnsEverything() {
        #expect(TokenBalancedSplit.owners(tokenCounts: [5, 1, 9], ranks: 1) == [0, 0, 0])
    }

    /// Longest first, each to the least loaded rank: 9 → r0, 7 → r1, 5 → r1 (7 < 9), 3 → r0 (9 < 12), 1 → r0 (12 = 12, lower rank).
    @Test func longestFirstToTheLeastLoadedRank() {
        let t = [3, 9, 1, 7, 5]
        let o = TokenBalancedSplit.owners(tokenCounts: t, ranks: 2)
        #expect(o == [0, 0, 0, 1, 1])
        #expect(TokenBalancedSplit.loads(tokenCounts: t, owners: o, ranks: 2) == [13, 12])
    }

    /// Ties in length go to lower ranks in index order, so every rank computes the same split.
    @Test func tiesAreDeterministic() {
        #expect(TokenBalancedSplit.owners(tokenCounts: [4, 4, 4, 4], ranks: 2) == [0, 1, 0, 1])
        #expect(TokenBalancedSplit.owners(tokenCounts: [4, 4], ranks: 3) == [0, 1])
    }

    /// Over many random batches: every item owned by exactly one valid rank, and the largest load within one item of
    /// the mean (the greedy step's guarantee).
    @Test(arguments: [2, 3, 4, 8])
    func balancedWithinOneItemOfTheMean(ranks: Int) {
        var g = SplitMix(seed: UInt64(ranks))
        for _ in 0..<200 {
            let n = Int(g.next() % 64) + 1
            let t = (0..<n).map { _ in Int(g.next() % 500) + 1 }
            let o = TokenBalancedSplit.owners(tokenCounts: t, ranks: ranks)
            #expect(o.count == n && o.allSatisfy { (0..<ranks).contains($0) })
            let loads = TokenBalancedSplit.loads(tokenCounts: t, owners: o, ranks: ranks)
            #expect(loads.reduce(0, +) == t.reduce(0, +))
            #expect(Double(loads.max()!) <= Double(t.reduce(0, +)) / Double(ranks) + Double(t.max()!))
        }
    }

    /// Graham's bound against the true optimum (brute force over every assignment of ≤ 9 items to 2 or 3 ranks):
    /// the largest load is at most (4/3 − 1/(3·ranks)) × the optimal largest load.
    @Test(arguments: [2, 3])
    func withinGrahamsBoundOfTheOptimum(ranks: Int) {
        var g = SplitMix(seed: 77 + UInt64(ranks))
        for _ in 0..<100 {
            let n = Int(g.next() % 9) + 1
            let t = (0..<n).map { _ in Int(g.next() % 300) + 1 }
            var best = Int.max
            var total = 1
            for _ in 0..<n { total *= ranks }
            for code in 0..<total {
                var c = code, load = [Int](repeating: 0, count: ranks)
                for x in t { load[c % ranks] += x; c /= ranks }
                best = min(best, load.max()!)
            }
            let lpt = TokenBalancedSplit.loads(tokenCounts: t, owners: TokenBalancedSplit.owners(tokenCounts: t, ranks: ranks), ranks: ranks).max()!
            #expect(Double(lpt) <= (4.0 / 3 - 1 / (3.0 * Double(ranks))) * Double(best) + 1e-9, "\(t): LPT \(lpt), optimum \(best)")
        }
    }

    struct SplitMix { var s: UInt64
        init(seed: UInt64) { s = seed }
        mutating func next() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}

@Suite struct StepCommandTests {
    func group(_ task: UInt64, prompt: [Int32]) -> AcceptedGroup {
        let c = Completion(tokens: [7, 8, 9], logprobs: [-0.5, -1.25, -2], selfCertainty: [0.1, 0.2, 0.3],
                           reward: 0.2, finishReason: .stop, entropy: [1, 2, 3])
        return AcceptedGroup(taskId: task, step: 3, promptIndex: Int(task) + 10, promptTokens: prompt,
                             group: RolloutGroup(taskId: task, actorId: "actor-\(task)", weightVersion: 4, promptId: "p\(task)",
                                                 completions: [c, c]))
    }

    @Test func roundTrips() throws {
        let cmd = StepCommand.train(step: 3, groups: [group(1, prompt: [1, -2, 300]), group(2, prompt: [5])])
        #expect(try StepCommand(decoding: cmd.encoded()) == cmd)
        #expect(try StepCommand(decoding: StepCommand.finish.encoded()) == .finish)
        #expect(try StepCommand(decoding: StepCommand.train(step: 0, groups: []).encoded()) == .train(step: 0, groups: []))
    }

    @Test func truncatedOrTrailingBytesAreErrorsNamingTheField() throws {
        let bytes = StepCommand.train(step: 3, groups: [group(1, prompt: [1, 2])]).encoded()
        let e = #expect(throws: MPIError.self) { try StepCommand(decoding: Array(bytes.prefix(30))) }
        #expect(e?.description.contains("group 0") == true)
        let t = #expect(throws: MPIError.self) { try StepCommand(decoding: bytes + [0]) }
        #expect(t?.description.contains("1 trailing bytes") == true)
        #expect(throws: MPIError.self) { try StepCommand(decoding: [9]) }
        #expect(throws: MPIError.self) { try StepCommand(decoding: []) }
    }
}

@Suite struct MPILaunchTests {
    @Test func detectsLaunchers() {
        #expect(MPILaunch.detect([:]) == nil)
        #expect(MPILaunch.detect(["SLURM_NTASKS": "4", "SLURM_JOB_ID": "7"]) == nil)  // a batch script, not a launch
        #expect(MPILaunch.detect(["OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"]) == MPILaunch(launcher: "mpirun", size: 2))
        #expect(MPILaunch.detect(["PMIX_RANK": "0", "SLURM_NTASKS": "3", "SLURM_JOB_ID": "7"]) == MPILaunch(launcher: "srun (PMIx)", size: 3))
        #expect(MPILaunch.detect(["PMI_SIZE": "5", "PMI_RANK": "0"]) == MPILaunch(launcher: "srun (PMI-2)", size: 5))
    }

    @Test func mpirunArguments() {
        #expect(MPIRun.arguments(ranks: 2, executable: "/x/rlif", arguments: ["learner", "--bind", "ipc:///t"], isRoot: false)
                == ["-np", "2", "--oversubscribe", "--bind-to", "none", "--mca", "btl_vader_single_copy_mechanism", "none",
                    "/x/rlif", "learner", "--bind", "ipc:///t"])
        #expect(MPIRun.arguments(ranks: 3, executable: "r", arguments: [], isRoot: true).contains("--allow-run-as-root"))
    }
}

@Suite struct WeightHashTests {
    @Test func mismatchNamesTheRanksThatDiffer() {
        #expect(WeightHash.mismatch([5, 5, 5], afterSteps: 3) == nil)
        let e = WeightHash.mismatch([5, 5, 6, 7], afterSteps: 10)
        #expect(e?.description.contains("after 10 steps") == true)
        #expect(e?.description.contains("rank 2 6, rank 3 7") == true)
        #expect(e?.description.contains("rank 1") == false)
    }

    @Test func scheduleChecksEveryNAndTheLastStep() {
        let s = WeightCheckSchedule(every: 3, steps: 7)
        #expect((0..<7).filter { s.due(afterStep: $0) } == [2, 5, 6])
        #expect((0..<4).filter { WeightCheckSchedule(every: 0, steps: 4).due(afterStep: $0) } == [3])
    }
}
