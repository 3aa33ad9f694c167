import ArgumentParser

public struct Potluck: AsyncParsableCommand {
    public init() {}
    public func run() async throws {}
}
