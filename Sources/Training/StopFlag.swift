import Foundation

/// A request to stop, settable from any thread (signal handlers run on a dispatch queue; the training or network
/// loop reads it between steps). Records the signal that asked, so the process can exit 128 + signal (130 for
/// SIGINT, 143 for SIGTERM) after it has written its checkpoint, as shells and supervisors expect.
public final class StopFlag: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var value = false
    private var sig: Int32?
    public init() {}
    /// Asks to stop; the first signal given is the one reported.
    public func set(signal: Int32? = nil) {
        lock.lock()
        value = true
        if sig == nil { sig = signal }
        lock.unlock()
    }
    public var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    /// The signal that asked to stop, if one did.
    public var signal: Int32? { lock.lock(); defer { lock.unlock() }; return sig }
    /// The conventional exit status of a process stopped by `signal` (128 + n), or 1 when stopped otherwise.
    public var exitStatus: Int32 { signal.map { 128 + $0 } ?? 1 }
}
