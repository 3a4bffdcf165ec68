/// The three endpoints of one learner, derived from the one address users pass around.
///
/// `tcp://HOST:P` → work `tcp://HOST:P`, weight notices `tcp://HOST:(P+1)`, weights `tcp://HOST:(P+2)`.
/// `ipc://PATH`   → `ipc://PATH-work`, `ipc://PATH-notices`, `ipc://PATH-weights`.
/// The learner binds them (HOST may be `*`); actors connect to them.
public struct Endpoints: Sendable, Equatable, CustomStringConvertible {
    public var work: String
    public var notices: String
    public var weights: String

    public init(work: String, notices: String, weights: String) {
        self.work = work
        self.notices = notices
        self.weights = weights
    }

    /// Parses a base address; the error says what was expected.
    public init(base: String) throws(EndpointError) {
        if base.hasPrefix("ipc://") {
            let path = base.dropFirst(6)
            guard !path.isEmpty else { throw EndpointError(address: base, why: "ipc:// needs a path") }
            self.init(work: "\(base)-work", notices: "\(base)-notices", weights: "\(base)-weights")
            return
        }
        guard base.hasPrefix("tcp://") else {
            throw EndpointError(address: base, why: "expected tcp://HOST:PORT or ipc://PATH")
        }
        guard let colon = base.lastIndex(of: ":"), colon > base.index(base.startIndex, offsetBy: 5),
              let port = Int(base[base.index(after: colon)...]), port > 0, port <= 65533 else {
            throw EndpointError(address: base, why: "expected a numeric port in 1...65533 (the learner uses PORT, PORT+1, PORT+2)")
        }
        let host = base[..<colon]
        guard host.count > 6 else { throw EndpointError(address: base, why: "missing host (use * to bind all interfaces)") }
        self.init(work: "\(host):\(port)", notices: "\(host):\(port + 1)", weights: "\(host):\(port + 2)")
    }

    public var description: String { "work \(work), notices \(notices), weights \(weights)" }
}

public struct EndpointError: Error, CustomStringConvertible, Equatable {
    public var address: String
    public var why: String
    public var description: String { "bad learner address '\(address)': \(why)" }
}
