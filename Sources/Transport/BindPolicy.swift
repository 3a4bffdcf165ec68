/// Whether a learner may serve its endpoints without CURVE: only where nobody else can reach them.
///
/// Local: `ipc://` (a Unix socket: reachable only through the file system, whose permissions rlif sets to 0700
/// in local mode), `inproc://`, and `tcp://` on a loopback address (127.0.0.0/8, ::1, localhost, interface lo).
/// Everything else — `tcp://*`, 0.0.0.0, any other address, interface or host name — is reachable from the
/// network and needs CURVE or an explicit `--insecure`.
public enum BindPolicy {
    public static func isLocal(_ endpoint: String) -> Bool {
        if endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") { return true }
        guard endpoint.hasPrefix("tcp://") else { return false }
        var host = String(endpoint.dropFirst(6))
        if let colon = host.lastIndex(of: ":") { host = String(host[..<colon]) }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" || host == "lo" || host == "::1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// Throws unless the endpoints are local, CURVE is on, or the operator said `--insecure`.
    public static func check(_ e: Endpoints, curve: Bool, insecure: Bool) throws(InsecureBindError) {
        guard !curve, !insecure else { return }
        let open = [e.work, e.notices, e.weights].filter { !isLocal($0) }
        guard let first = open.first else { return }
        throw InsecureBindError(endpoint: first)
    }
}

public struct InsecureBindError: Error, CustomStringConvertible, Equatable {
    public var endpoint: String
    public var description: String {
        """
        refusing to serve \(endpoint) without CURVE: anyone who can reach it could join as an actor, steer \
        training with made-up groups or copy the model. Make keys and pass them:
          rlif keygen --out learner          # learner.pub + learner.secret
          rlif keygen --out actor1           # one per actor host (or pod template)
          rlif learner ... --curve-secret learner.secret --authorized-keys actor1.pub   (a file of keys or a directory of .pub files)
          rlif actor ... --curve-secret actor1.secret --learner-key learner.pub
        or bind to ipc:// or 127.0.0.1, or pass --insecure to serve without authentication on a network you trust.
        """
    }
}
