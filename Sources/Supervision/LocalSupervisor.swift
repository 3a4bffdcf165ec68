import Foundation

/// Local mode's supervision of one learner and N actors (all children of `rlif train`): forwards a stop signal to
/// every child, reports an actor that dies while the run goes on (named, with how it died), waits for the
/// learner, then gives the actors a grace period to leave on their own before killing them.
public final class LocalSupervisor: @unchecked Sendable {  // `stopSignal` and `deaths` guarded by `lock`
    public let learner: ChildProcess
    public let actors: [ChildProcess]
    private let lock = NSLock()
    private var stopSignal: Int32?
    private var deaths: [(name: String, exit: ChildExit)] = []

    /// What happened, for the command to turn into log lines and an exit status.
    public struct Outcome: Sendable {
        public var learner: ChildExit
        /// Actors that died (not status 0) while the learner was still running and no stop was requested.
        public var actorDeaths: [String]
        /// The signal `stop(signal:)` forwarded, if any.
        public var stopSignal: Int32?
        /// Actors still running after the grace period, killed with SIGKILL.
        public var actorsKilled: [String]
    }

    /// `onActorDeath` is called (on a background queue) with the actor's name and how it died, as it happens.
    public init(learner: ChildProcess, actors: [ChildProcess], onActorDeath: (@Sendable (String, ChildExit) -> Void)? = nil) {
        self.learner = learner
        self.actors = actors
        for a in actors {
            a.onExit { [weak self, learner, name = a.name] how in  // the name, not `a`: a → handler → a
                // Status 0 is an actor the learner told to leave (the run is over); anything else is a death.
                guard let self, !how.isSuccess, learner.isRunning, self.stopRequested == nil else { return }
                self.lock.lock(); self.deaths.append((name, how)); self.lock.unlock()
                onActorDeath?(name, how)
            }
        }
    }

    private var stopRequested: Int32? { lock.lock(); defer { lock.unlock() }; return stopSignal }

    /// Ctrl-C / SIGTERM: every child gets SIGTERM (the learner finishes its step and checkpoints, actors leave).
    public func stop(signal: Int32) {
        lock.lock(); if stopSignal == nil { stopSignal = signal }; lock.unlock()
        for c in [learner] + actors { c.signal(SIGTERM) }
    }

    /// Waits for the learner, then at most `actorGraceSeconds` for the actors, kills those left, drains output.
    public func run(actorGraceSeconds: Double) -> Outcome {
        let learnerExit = learner.wait()
        let deadline = Date().addingTimeInterval(actorGraceSeconds)
        var killed: [String] = []
        for a in actors {
            while a.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            if a.isRunning { a.signal(SIGKILL); killed.append(a.name) }
            a.wait()  // records how it ended
        }
        learner.drain()
        for a in actors { a.drain() }
        lock.lock(); defer { lock.unlock() }
        return Outcome(learner: learnerExit, actorDeaths: deaths.map { "\($0.name) \($0.exit)" },
                       stopSignal: stopSignal, actorsKilled: killed)
    }
}
