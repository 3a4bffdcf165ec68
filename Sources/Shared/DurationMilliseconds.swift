extension Duration {
    /// Whole milliseconds, rounded toward zero (poll timeouts, deadlines, the learner's clock).
    public var wholeMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
