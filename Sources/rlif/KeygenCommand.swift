import ArgumentParser
import Foundation
import Learner
import Transport

/// `rlif keygen`: a CURVE key pair for a learner or an actor.
struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a CURVE key pair: PREFIX.pub (share it) and PREFIX.secret (mode 0600, keep it).",
        discussion: """
            The learner takes --curve-secret learner.secret --authorized-keys FILE|DIR (a file of actor public keys, \
            one per line with an optional label after it, or a directory of .pub files); each actor takes \
            --curve-secret actor.secret --learner-key learner.pub. Send SIGHUP to the learner after editing the \
            authorized keys: removed keys are cut off.
            """)

    @Option(help: "Path prefix of the two files (e.g. keys/actor1 → keys/actor1.pub, keys/actor1.secret).") var out: String

    func run() throws {
        let pair = try CurveKeyPair.generate()
        let name = (out as NSString).lastPathComponent
        let made = try CurveKeyFiles.write(pair, prefix: out,
                                           comment: "rlif CURVE key '\(name)', made by rlif keygen on \(ProcessInfo.processInfo.hostName) at \(ISO8601DateFormatter().string(from: Date()))")
        print("public key \(pair.publicKey) → \(made.pub)")
        print("secret key → \(made.secret) (mode 0600; never share it)")
    }
}

/// The CURVE options of `rlif learner` and `rlif actor`, read into Transport's key types before any work.
enum CurveOptions {
    /// The learner's settings, or nil without --curve-secret; both flags or neither.
    static func learner(secret: String?, authorized: String?) throws -> LearnerCurve? {
        switch (secret, authorized) {
        case (nil, nil): return nil
        case (nil, _?): throw ValidationError("--authorized-keys needs --curve-secret (the learner's own key; make one with rlif keygen --out learner)")
        case (_?, nil): throw ValidationError("--curve-secret needs --authorized-keys FILE|DIR (the actors' public keys)")
        case let (s?, a?):
            let keys = try AuthorizedKeys.load(a)
            if keys.count == 0 { throw ValidationError("\(a): no authorized keys: no actor could connect") }
            return LearnerCurve(keyPair: try CurveKeyFiles.readSecret(s), access: CurveAccess(keys))
        }
    }

    static func actor(secret: String?, learnerKey: String?) throws -> (learnerKey: CurveKey, keyPair: CurveKeyPair)? {
        switch (secret, learnerKey) {
        case (nil, nil): return nil
        case (nil, _?): throw ValidationError("--learner-key needs --curve-secret (this actor's key; make one with rlif keygen --out actor)")
        case (_?, nil): throw ValidationError("--curve-secret needs --learner-key FILE (the learner's .pub)")
        case let (s?, l?): return (try CurveKeyFiles.readPublic(l), try CurveKeyFiles.readSecret(s))
        }
    }
}
