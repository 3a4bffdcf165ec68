import Foundation
import Testing
@testable import Supervision

/// Local mode's supervision with real child processes (/bin/sh): how each one ended, named; prefixed, whole
/// stderr lines; an actor's death reported while the learner runs; a clean actor exit not reported; the grace
/// period before leftover actors are killed; a stop signal forwarded to every child. Orderings are made by the
/// test (files, "ready" lines), not by sleeping.
@Suite(.serialized) struct SupervisorTests {
    static let sh = URL(fileURLWithPath: "/bin/sh")

    final class Lines: @unchecked Sendable {  // guarded by lock
        private let lock = NSLock()
        private var data = Data()
        func append(_ d: Data) { lock.lock(); data.append(d); lock.unlock() }
        var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
    }

    static func child(_ script: String, name: String, err: Lines = Lines(), out: Lines = Lines()) throws -> ChildProcess {
        try ChildProcess.spawn(sh, ["-c", script], name: name, stdout: { out.append($0) }, stderr: { err.append($0) })
    }

    /// A child that has ended, waited for and drained, is freed once its owner lets go, also when its exit handler
    /// captured it (its termination handler, and an exit handler holding the child as LocalSupervisor's did, used
    /// to keep it alive for good: cycles through `Process.terminationHandler` and `onExit`).
    @Test func anEndedChildIsFreed() throws {
        weak var weakChild: ChildProcess?
        do {
            let c = try Self.child("exit 0", name: "a")
            weakChild = c
            let told = DispatchSemaphore(value: 0)
            c.onExit { _ in _ = c.name; told.signal() }
            #expect(c.wait() == .exited(0))
            #expect(told.wait(timeout: .now() + 30) == .success)
            c.drain()
        }
        let deadline = Date().addingTimeInterval(30)
        while weakChild != nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(weakChild == nil, "the ended ChildProcess is still alive")
    }

    @Test func exitsAreNamedWithCodeOrSignal() throws {
        let a = try Self.child("exit 3", name: "a")
        #expect(a.wait() == .exited(3))
        #expect(a.exit?.description == "exited with status 3" && a.exit?.shellStatus == 3)
        let b = try Self.child("kill -9 $$", name: "b")
        #expect(b.wait() == .signalled(SIGKILL))
        #expect(b.exit?.description.contains("signal 9 (SIGKILL)") == true && b.exit?.shellStatus == 137)
        let c = try Self.child("kill -SEGV $$", name: "c")
        #expect(c.wait().description == "was killed by signal 11 (SIGSEGV)")
        #expect(throws: SupervisorError.self) {
            try ChildProcess.spawn(URL(fileURLWithPath: "/nonexistent/rlif"), [], name: "ghost")
        }
    }

    @Test func stderrLinesArePrefixedWholeAndStdoutPassesThrough() throws {
        let err = Lines(), out = Lines()
        // A line written in two pieces, and a last line without a newline.
        let c = try Self.child("printf 'one ' >&2; sleep 0.1; printf 'line\\ntwo\\nlast' >&2; echo result", name: "actor-2",
                               err: err, out: out)
        c.wait()
        c.drain(seconds: 60)  // returns at end of file; the long bound only matters on a heavily loaded machine
        #expect(err.text == "[actor-2] one line\n[actor-2] two\n[actor-2] last\n")
        #expect(out.text == "result\n")
    }

    @Test func anActorDyingWhileTheLearnerRunsIsReportedAndACleanExitIsNot() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rlif-sup-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let go = dir.appendingPathComponent("go").path
        // The learner runs until the test says so: the actors' ends happen while it runs, whatever the load.
        let learner = try Self.child("while [ ! -e '\(go)' ]; do sleep 0.02; done; exit 0", name: "learner")
        let dying = try Self.child("kill -9 $$", name: "actor-1")
        let leaving = try Self.child("exit 0", name: "actor-2")
        let lingering = try Self.child("exec sleep 30", name: "actor-3")  // exec: the pid is the process, as rlif's are
        let reported = Lines()
        let s = LocalSupervisor(learner: learner, actors: [dying, leaving, lingering]) { name, how in
            reported.append(Data("\(name) \(how)\n".utf8))
        }
        dying.wait(); leaving.wait()
        FileManager.default.createFile(atPath: go, contents: nil)
        let o = s.run(actorGraceSeconds: 0.5)
        #expect(o.learner == .exited(0) && o.stopSignal == nil)
        #expect(o.actorDeaths.count == 1 && o.actorDeaths.first?.hasPrefix("actor-1 was killed by signal 9 (SIGKILL)") == true, "\(o.actorDeaths)")
        #expect(reported.text.hasPrefix("actor-1 was killed by signal 9"))
        #expect(o.actorsKilled == ["actor-3"], "the actor still running after the grace period is killed")
        #expect(lingering.exit == .signalled(SIGKILL))
    }

    @Test func stopForwardsSIGTERMToEveryChildAndIsNotADeath() throws {
        // Children that trap SIGTERM and exit 0 ("checkpoint written"), like the learner and actors; each says
        // "ready" once its trap is set.
        let script = "trap 'exit 0' TERM; echo ready; while true; do sleep 0.02; done"
        let outs = (0..<3).map { _ in Lines() }
        let learner = try Self.child(script, name: "learner", out: outs[0])
        let actors = try (1...2).map { try Self.child(script, name: "actor-\($0)", out: outs[$0]) }
        let s = LocalSupervisor(learner: learner, actors: actors)
        let deadline = Date().addingTimeInterval(60)
        while !outs.allSatisfy({ $0.text.contains("ready") }) && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        try #require(outs.allSatisfy { $0.text.contains("ready") }, "children never set their traps")
        s.stop(signal: SIGINT)
        let o = s.run(actorGraceSeconds: 30)
        #expect(o.stopSignal == SIGINT && o.learner == .exited(0))
        #expect(o.actorDeaths.isEmpty && o.actorsKilled.isEmpty)
        #expect(actors.allSatisfy { $0.exit == .exited(0) })
    }
}
