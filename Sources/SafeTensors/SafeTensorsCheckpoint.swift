import Foundation

/// The tensors of a Hugging Face checkpoint directory: either a single `model.safetensors`, or shards listed by
/// `model.safetensors.index.json` (`{"metadata": {...}, "weight_map": {tensor: shard file}}`). The index is
/// checked against the shards: every mapped tensor must be in its shard, and every shard tensor must be mapped
/// to that shard.
public struct SafeTensorsCheckpoint: Sendable {
    public static let singleFileName = "model.safetensors"
    public static let indexFileName = "model.safetensors.index.json"

    public let directory: URL
    /// Opened shard files by file name.
    public let shards: [String: SafeTensorsFile]
    /// Tensor name → shard file name.
    public let weightMap: [String: String]
    /// Metadata of the single file, or of the index (`metadata`, values stringified).
    public let metadata: [String: String]

    public var tensorNames: [String] { weightMap.keys.sorted() }

    public init(directory: URL) throws {
        self.directory = directory
        let fm = FileManager.default
        let indexURL = directory.appendingPathComponent(Self.indexFileName)
        let singleURL = directory.appendingPathComponent(Self.singleFileName)
        if fm.fileExists(atPath: indexURL.path) {
            let raw: Data
            do { raw = try Data(contentsOf: indexURL) } catch {
                throw SafeTensorsError(.io, file: indexURL.path, "cannot read: \(error.localizedDescription)")
            }
            guard let obj = (try? JSONSerialization.jsonObject(with: raw)) as? [String: Any] else {
                throw SafeTensorsError(.badIndex, file: indexURL.path, "not a JSON object")
            }
            guard let wm = obj["weight_map"] as? [String: Any] else {
                throw SafeTensorsError(.badIndex, file: indexURL.path, "missing 'weight_map' object")
            }
            var map: [String: String] = [:]
            for (k, v) in wm {
                guard let f = v as? String, !f.contains("/"), !f.isEmpty else {
                    throw SafeTensorsError(.badIndex, file: indexURL.path, tensor: k, "weight_map value must be a file name in the directory")
                }
                map[k] = f
            }
            var shards: [String: SafeTensorsFile] = [:]
            for f in Set(map.values).sorted() {
                shards[f] = try SafeTensorsFile(contentsOf: directory.appendingPathComponent(f))
            }
            for (t, f) in map where shards[f]!.tensors[t] == nil {
                throw SafeTensorsError(.badIndex, file: indexURL.path, tensor: t, "weight_map says shard '\(f)' but that shard has no such tensor")
            }
            for (f, s) in shards {
                for t in s.tensors.keys where map[t] != f {
                    throw SafeTensorsError(.badIndex, file: directory.appendingPathComponent(f).path, tensor: t,
                                           map[t] == nil ? "tensor is not listed in \(Self.indexFileName)" : "tensor is also in shard '\(f)' but the index maps it to '\(map[t]!)'")
                }
            }
            var md: [String: String] = [:]
            if let m = obj["metadata"] as? [String: Any] { for (k, v) in m { md[k] = "\(v)" } }
            self.shards = shards; self.weightMap = map; self.metadata = md
        } else if fm.fileExists(atPath: singleURL.path) {
            let f = try SafeTensorsFile(contentsOf: singleURL)
            self.shards = [Self.singleFileName: f]
            self.weightMap = Dictionary(uniqueKeysWithValues: f.tensors.keys.map { ($0, Self.singleFileName) })
            self.metadata = f.metadata
        } else {
            throw SafeTensorsError(.io, file: directory.path, "neither \(Self.singleFileName) nor \(Self.indexFileName) exists")
        }
    }

    /// The shard holding `name`, or a `.missingTensor` error naming the directory.
    public func file(for name: String) throws -> SafeTensorsFile {
        guard let f = weightMap[name], let s = shards[f] else {
            throw SafeTensorsError(.missingTensor, file: directory.path, tensor: name, "no such tensor in the checkpoint")
        }
        return s
    }

    public func shape(of name: String) -> [Int]? { (try? file(for: name))?.shape(of: name) }
    public func dtype(of name: String) -> SafeTensorsDType? { (try? file(for: name))?.dtype(of: name) }
    public func floats(_ name: String) throws -> [Float] { try file(for: name).floats(name) }
    public func readFloats(_ name: String, into dst: UnsafeMutablePointer<Float>, count: Int) throws {
        try file(for: name).readFloats(name, into: dst, count: count)
    }
    public func ints(_ name: String) throws -> [Int64] { try file(for: name).ints(name) }
}
