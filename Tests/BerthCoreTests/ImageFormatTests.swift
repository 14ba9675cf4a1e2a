import BerthCore
import Testing

@Suite("Image formats")
struct ImageFormatTests {
    @Test(
        "a call's image is told by its first bytes",
        arguments: [
            ([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00], ImageFormat?.some(.png)),
            ([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10], .jpeg),
            (Array("GIF89a\u{1}\u{0}".utf8), .gif),
            (Array("GIF87a".utf8), .gif),
            (Array("RIFF\u{0}\u{0}\u{0}\u{0}WEBPVP8 ".utf8), .webp),
            // Not images, or cut short.
            (Array("RIFF\u{0}\u{0}\u{0}\u{0}WAVEfmt ".utf8), nil),
            ([0x89, 0x50, 0x4E, 0x47], nil),
            (Array("%PDF-1.7".utf8), nil),
            ([], nil),
        ] as [([UInt8], ImageFormat?)]
    )
    func detects(bytes: [UInt8], format: ImageFormat?) {
        #expect(ImageFormat(bytes: bytes) == format)
    }

    @Test("each format names the media type a data: URL carries")
    func mediaTypes() {
        #expect(ImageFormat.allCases.map(\.mediaType) == ["image/png", "image/jpeg", "image/gif", "image/webp"])
    }
}
