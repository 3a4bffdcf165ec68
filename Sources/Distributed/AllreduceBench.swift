import Foundation

/// MPI_Allreduce throughput of gradient-sized float buffers, reduced in the trainer's buckets (`rlif bench --only
/// allreduce` under mpirun). Every rank runs it; rank 0 reports.
public enum AllreduceBench {
    public struct Row: Sendable {
        public var floats: Int
        /// Median wall time of one whole-buffer reduction (all buckets).
        public var seconds: Double
        /// Bytes per second of the buffer (the "algorithm bandwidth").
        public var algorithmBandwidth: Double { Double(floats * 4) / seconds }
        /// Bytes each rank sends and receives per second in a ring all-reduce, 2(n−1)/n × buffer / time (NCCL's "bus
        /// bandwidth"): comparable to the link speed whatever the rank count.
        public func busBandwidth(ranks: Int) -> Double { algorithmBandwidth * 2 * Double(ranks - 1) / Double(ranks) }
    }

    public static func run(world: MPIWorld, floats sizes: [Int], iterations: Int) throws -> [Row] {
        var rows: [Row] = []
        for n in sizes {
            let buf = UnsafeMutablePointer<Float>.allocate(capacity: n)
            defer { buf.deallocate() }
            // Values that stay finite and exact-ish after many sums: 1/size per rank.
            buf.initialize(repeating: 1 / Float(world.size), count: n)
            try world.barrier()
            try world.allreduceGradients(buf, count: n)  // warm-up (connections, registration)
            var times: [Double] = []
            for _ in 0..<max(1, iterations) {
                try world.barrier()
                let t0 = DispatchTime.now().uptimeNanoseconds
                try world.allreduceGradients(buf, count: n)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            // The collective takes as long as its slowest rank: the max over ranks of each rank's median (gathered
            // as a sum of one-hot vectors: a few doubles, no extra MPI operation needed).
            times.sort()
            var all = [Double](repeating: 0, count: world.size)
            all[world.rank] = times[times.count / 2]
            try world.allreduceSum(&all)
            let t = all.max()!
            rows.append(Row(floats: n, seconds: t))
        }
        return rows
    }
}
