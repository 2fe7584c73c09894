/// Numbers read from outside (a file, a request, another process) become
/// integers only through these: `Int(someDouble)` traps on NaN, infinity
/// and anything beyond Int's range, which stopped the server on a COCO
/// file whose image was `"width": 1e19` (issue 26).
extension Int {
    /// The integer part of `value`, or nil when it is not finite or does
    /// not fit in an Int.
    public init?(checked value: Double) {
        // 2^63 is exactly representable; every double below it fits.
        guard value.isFinite, value >= -9_223_372_036_854_775_808.0, value < 9_223_372_036_854_775_808.0 else { return nil }
        self.init(value)
    }

    /// For display: the integer part of `value` clamped to Int's range; NaN is 0.
    /// (A static function, not an initialiser: `Int.init` passed as a function stays unambiguous.)
    public static func saturating(_ value: Double) -> Int {
        value.isNaN ? 0 : Int(checked: value) ?? (value < 0 ? .min : .max)
    }
}
