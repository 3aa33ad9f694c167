import CommandSupport
import Testing

@Suite struct MedianTests {
    @Test func anOddCountGivesTheMiddleValue() {
        #expect(median([3, 1, 2]) == 2)
        #expect(median([7]) == 7)
    }

    @Test func anEvenCountGivesTheMeanOfTheTwoMiddleValues() {
        #expect(median([4, 1, 3, 2]) == 2.5)
        #expect(median([10, 20]) == 15)
    }

    @Test func noValuesGiveNoMedian() {
        #expect(median([]) == nil)
        #expect(medianElement([Double](), by: { $0 }) == nil)
    }

    @Test func theMedianElementIsTheMiddleRunByItsKey() {
        let runs = [(wall: 3.0, name: "c"), (wall: 1.0, name: "a"), (wall: 2.0, name: "b")]
        #expect(medianElement(runs, by: \.wall)?.name == "b")
    }

    @Test func anEvenCountGivesTheUpperOfTheTwoMiddleElements() {
        let runs = [
            (wall: 4.0, name: "d"), (wall: 1.0, name: "a"), (wall: 3.0, name: "c"), (wall: 2.0, name: "b"),
        ]
        #expect(medianElement(runs, by: \.wall)?.name == "c")
    }
}
