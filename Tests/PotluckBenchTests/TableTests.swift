import Testing

@testable import PotluckBench

@Suite struct TableTests {
    @Test func columnsAreAlignedToTheirWidestCell() {
        var table = Table("a", "long header")
        table.add("wide cell", "x")
        #expect(
            table.rendered == """
                | a         | long header |
                |-----------|-------------|
                | wide cell | x           |
                """)
    }
}
