import Foundation

/// A registered model's serving settings, kept per model (every version is
/// served with them). Today: preprocessing.
public struct ModelSettings: Sendable, Codable, Hashable {
    /// Blur faces in every image before the model sees it (off: nil).
    public var blurFaces: FaceBlur?

    public init(blurFaces: FaceBlur? = nil) { self.blurFaces = blurFaces }

    enum CodingKeys: String, CodingKey { case blurFaces = "blur_faces" }
}

/// Face blurring before a predict: OpenCV's frontal-face Haar cascade
/// finds the faces, each is Gaussian-blurred in place. Detection runs on
/// the image scaled down to `detectSide` pixels on its long side (the
/// cascade costs about a second per megapixel on one core).
public struct FaceBlur: Sendable, Codable, Hashable {
    public var scaleFactor: Double
    public var minNeighbors: Int
    /// Smallest face, in pixels of the image as sent.
    public var minSize: Int
    public var detectSide: Int

    public init(scaleFactor: Double = 1.1, minNeighbors: Int = 5, minSize: Int = 24, detectSide: Int = 1280) {
        self.scaleFactor = scaleFactor
        self.minNeighbors = minNeighbors
        self.minSize = minSize
        self.detectSide = detectSide
    }

    enum CodingKeys: String, CodingKey {
        case scaleFactor = "scale_factor", minNeighbors = "min_neighbors", minSize = "min_size", detectSide = "detect_side"
    }

    /// Missing keys take their defaults, so `{"blur_faces": {}}` turns it on.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = FaceBlur()
        scaleFactor = try c.decodeIfPresent(Double.self, forKey: .scaleFactor) ?? defaults.scaleFactor
        minNeighbors = try c.decodeIfPresent(Int.self, forKey: .minNeighbors) ?? defaults.minNeighbors
        minSize = try c.decodeIfPresent(Int.self, forKey: .minSize) ?? defaults.minSize
        detectSide = try c.decodeIfPresent(Int.self, forKey: .detectSide) ?? defaults.detectSide
    }

    /// Each value within what the cascade accepts, named when it is not.
    public func validate() throws(YardError) {
        guard scaleFactor > 1, scaleFactor <= 2 else { throw YardError.invalid("blur_faces.scale_factor", "\(scaleFactor) must be above 1 and at most 2") }
        guard (0...50).contains(minNeighbors) else { throw YardError.invalid("blur_faces.min_neighbors", "\(minNeighbors) must be between 0 and 50") }
        guard (8...4096).contains(minSize) else { throw YardError.invalid("blur_faces.min_size", "\(minSize) must be between 8 and 4096 pixels") }
        guard (160...8000).contains(detectSide) else { throw YardError.invalid("blur_faces.detect_side", "\(detectSide) must be between 160 and 8000 pixels") }
    }
}
