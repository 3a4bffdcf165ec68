import FlyingFox
import FlyingSocks
import Foundation
import Prometheus

/// `GET /metrics` in Prometheus' text format (version 0.0.4) on HOST:PORT, served by FlyingFox on Swift
/// concurrency's threads while the process's own loop runs on its thread. FlyingFox rather than Hummingbird: it
/// has no dependencies (Hummingbird brings SwiftNIO and minutes of build) and one route is all this needs.
/// The registry is swift-prometheus'; its metrics are thread-safe, so the owner updates them from any thread.
public final class MetricsEndpoint: @unchecked Sendable {  // immutable after init; `server` is an actor
    public let registry: PrometheusCollectorRegistry
    /// The bound port (the requested one, or the kernel's choice for port 0).
    public let port: UInt16
    public let host: String
    private let server: HTTPServer
    private let task: Task<Void, Never>

    public struct AddressError: Error, CustomStringConvertible {
        public var description: String
    }

    /// "HOST:PORT" as given to --metrics-addr: an IPv4 address (or "*" / "" for every interface) and a port.
    public static func parse(_ address: String) throws -> (host: String, port: UInt16) {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw AddressError(description: "--metrics-addr \(address): expected HOST:PORT, e.g. 127.0.0.1:9464 or 0.0.0.0:9464")
        }
        let host = String(address[..<colon])
        guard host.isEmpty || host == "*" || host.split(separator: ".").count == 4 && host.split(separator: ".").allSatisfy({ UInt8($0) != nil }) else {
            throw AddressError(description: "--metrics-addr \(address): HOST must be an IPv4 address or * (got '\(host)')")
        }
        return (host.isEmpty || host == "*" ? "0.0.0.0" : host, port)
    }

    /// Binds and starts serving; returns once the socket listens (or throws why it could not, e.g. the port is
    /// taken).
    public init(address: String, registry: PrometheusCollectorRegistry) throws {
        let (host, port) = try Self.parse(address)
        self.registry = registry
        self.host = host
        let server = HTTPServer(address: try .inet(ip4: host, port: port), timeout: 15, logger: DisabledLogger.disabled)
        self.server = server
        let started = StartGate()
        task = Task.detached {
            await server.appendRoute("GET /metrics", to: ClosureHTTPHandler { _ in
                HTTPResponse(statusCode: .ok,
                             headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                             body: Data(registry.emitToBuffer()))
            })
            do { try await server.run() } catch { started.fail(error) }
        }
        Task.detached {
            do {
                try await server.waitUntilListening(timeout: 10)
                if case .ip4(_, let p) = await server.listeningAddress { started.open(port: p) } else { started.open(port: port) }
            } catch { started.fail(error) }
        }
        switch started.wait() {
        case .success(let p): self.port = p
        case .failure(let e):
            task.cancel()
            throw AddressError(description: "--metrics-addr \(address): cannot serve /metrics: \(e)")
        }
    }

    /// Stops listening (tests; a process just exits).
    public func stop() {
        let server = self.server
        let done = DispatchSemaphore(value: 0)
        Task.detached { await server.stop(timeout: 1); done.signal() }
        _ = done.wait(timeout: .now() + 3)
        task.cancel()
    }
}

/// A one-shot result handed from a task to the thread blocked in `wait()`.
private final class StartGate: @unchecked Sendable {  // behind `cond`
    private let cond = NSCondition()
    private var result: Result<UInt16, Error>?
    func open(port: UInt16) { set(.success(port)) }
    func fail(_ e: Error) { set(.failure(e)) }
    private func set(_ r: Result<UInt16, Error>) {
        cond.lock(); if result == nil { result = r }; cond.broadcast(); cond.unlock()
    }
    func wait() -> Result<UInt16, Error> {
        cond.lock(); defer { cond.unlock() }
        while result == nil { cond.wait() }
        return result!
    }
}
