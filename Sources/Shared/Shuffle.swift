extension MutableCollection where Self: RandomAccessCollection, Index == Int {
    /// Fisher–Yates (Durstenfeld) shuffle drawing `next() % (i + 1)` for i = count−1 … 1: the one shuffle of the
    /// prompt epochs (`PromptDataset.order`) and the SFT epochs. Unlike the standard library's `shuffle(using:)`,
    /// whose algorithm is not promised to stay the same across Swift versions, the order for a seed is fixed
    /// (checkpoints resume into it).
    public mutating func seededShuffle<G: RandomNumberGenerator>(using rng: inout G) {
        guard count > 1 else { return }
        for i in stride(from: count - 1, to: 0, by: -1) {
            swapAt(startIndex + i, startIndex + Int(rng.next() % UInt64(i + 1)))
        }
    }
}
