import Foundation

/// Small image files for dataset tests, made without an image library.
public enum TestImages {
    /// A baseline JPEG's header segments, a token of scan data and the end
    /// marker: enough for a header probe (it never decodes pixels). `salt`
    /// makes the bytes, and so the md5, differ.
    public static func jpeg(width: Int = 20, height: Int = 16, end: Bool = true, salt: UInt8 = 0) -> [UInt8] {
        var b: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10] + Array("JFIF".utf8) + [0, 1, 1, 0, 0, 1, 0, 1, 0, 0]
        b += [0xFF, 0xC0, 0x00, 0x11, 0x08, UInt8(height >> 8), UInt8(height & 0xFF), UInt8(width >> 8), UInt8(width & 0xFF), 0x03,
              1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]
        b += [0xFF, 0xDA, 0x00, 0x0C, 0x03, 1, 0, 2, 0x11, 3, 0x11, 0, 0x3F, 0, salt, 0x12, 0x34]
        if end { b += [0xFF, 0xD9] }
        return b
    }

    public static func write(_ bytes: [UInt8], _ path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// A YOLO dataset at DIR/yolo: 4 train and 2 val images, labels for all
    /// but one (t3), classes square and disc.
    public static func yoloDataset(in dir: TemporaryDirectory, name: String = "yolo", imagePadding: Int = 0) throws -> String {
        let root = dir.file(name)
        try dir.write("\(name)/data.yaml", "train: images/train\nval: images/val\nnames: [square, disc]\n")
        let pad = [UInt8](repeating: 7, count: imagePadding)
        for i in 0..<4 { try write(jpeg(end: false, salt: UInt8(i)) + pad + [0xFF, 0xD9], root + "/images/train/t\(i).jpg") }
        for i in 0..<2 { try write(jpeg(end: false, salt: UInt8(10 + i)) + pad + [0xFF, 0xD9], root + "/images/val/v\(i).jpg") }
        for i in 0..<3 { try dir.write("\(name)/labels/train/t\(i).txt", "0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n") }
        for i in 0..<2 { try dir.write("\(name)/labels/val/v\(i).txt", "1 0.5 0.5 0.4 0.4\n") }
        return root
    }
}
