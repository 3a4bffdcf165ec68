import Foundation

/// What Linux reports about memory: this process's resident set (current and high-water mark, from
/// `/proc/self/status`) and the memory a run may use (the cgroup limit, else `MemAvailable`). Parsing is pure
/// (`parse…` take the file text) so it is tested without depending on the machine.
public enum SystemMemory {
    /// VmRSS and VmHWM of this process in bytes (nil when /proc is unavailable).
    public static func resident() -> (current: Int, peak: Int)? {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        guard let rss = kibibytes("VmRSS", in: s), let hwm = kibibytes("VmHWM", in: s) else { return nil }
        return (rss * 1024, hwm * 1024)
    }

    /// Resets VmHWM to the current RSS (writes "5" to /proc/self/clear_refs, Linux ≥ 4.0); false if not allowed.
    @discardableResult
    public static func resetPeak() -> Bool {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, "5", 1) == 1
    }

    /// `key:   123 kB` from a /proc file, in KiB.
    static func kibibytes(_ key: String, in text: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            let fields = line.dropFirst(key.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" })
            return fields.first.flatMap { Int($0) }
        }
        return nil
    }

    /// Memory a run may use, and where the number comes from.
    public struct Budget: Sendable, Equatable {
        public var bytes: Int
        /// e.g. "cgroup v2 memory.max 24.0 GiB, 3.1 GiB in use" or "MemAvailable".
        public var source: String
        public init(bytes: Int, source: String) { self.bytes = bytes; self.source = source }
    }

    /// Limits of 2^60 bytes and more mean "no limit" (cgroup v1 writes 9223372036854771712).
    static let unlimited = 1 << 60

    /// The budget from the text of /proc/meminfo, /proc/self/cgroup and a reader for cgroup files (path → text):
    /// a cgroup v2 `memory.max` (or v1 `memory.limit_in_bytes`) less what the group already uses, when it is
    /// lower than MemAvailable; else MemAvailable.
    static func parseBudget(meminfo: String, cgroup: String?, read: (String) -> String?) -> Budget? {
        let available = kibibytes("MemAvailable", in: meminfo).map { $0 * 1024 }
        var limit: (bytes: Int, used: Int, source: String)? = nil
        for line in (cgroup ?? "").split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let path = String(parts[2]) == "/" ? "" : String(parts[2])
            let candidates: [(String, String, String)]
            if parts[0] == "0" && parts[1].isEmpty {
                candidates = [("/sys/fs/cgroup\(path)/memory.max", "/sys/fs/cgroup\(path)/memory.current", "cgroup v2 memory.max"),
                              ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "cgroup v2 memory.max")]
            } else if parts[1].split(separator: ",").contains("memory") {
                candidates = [("/sys/fs/cgroup/memory\(path)/memory.limit_in_bytes", "/sys/fs/cgroup/memory\(path)/memory.usage_in_bytes", "cgroup v1 memory.limit_in_bytes"),
                              ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes", "cgroup v1 memory.limit_in_bytes")]
            } else { continue }
            for (maxFile, usedFile, name) in candidates {
                guard let t = read(maxFile)?.trimmingCharacters(in: .whitespacesAndNewlines), let b = Int(t), b < unlimited else { continue }
                let used = read(usedFile).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
                if limit == nil || b - used < limit!.bytes - limit!.used { limit = (b, used, name) }
                break
            }
        }
        if let l = limit, available == nil || l.bytes - l.used < available! {
            return Budget(bytes: max(0, l.bytes - l.used),
                          source: "\(l.source) \(MemoryPlan.gib(l.bytes)), \(MemoryPlan.gib(l.used)) in use")
        }
        return available.map { Budget(bytes: $0, source: "MemAvailable") }
    }

    /// This machine's budget (nil when /proc/meminfo cannot be read).
    public static func budget() -> Budget? {
        guard let meminfo = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        return parseBudget(meminfo: meminfo, cgroup: try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8),
                           read: { try? String(contentsOfFile: $0, encoding: .utf8) })
    }
}
