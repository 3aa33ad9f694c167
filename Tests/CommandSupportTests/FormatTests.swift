import CommandSupport
import Testing

@Suite struct FormatTests {
    @Test func fixedRoundsAndPadsToTheDigitsAsked() {
        #expect(Format.fixed(1.25, 1) == "1.3")
        #expect(Format.fixed(3, 2) == "3.00")
        #expect(Format.fixed(2, 0) == "2")
        #expect(Format.fixed(2.5, 2) == "2.50")
    }

    @Test func bytesNamesWholeBinaryMultiples() {
        #expect(Format.bytes(256 * 1024) == "256 KiB")
    }
}
