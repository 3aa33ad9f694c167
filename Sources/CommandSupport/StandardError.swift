import Glibc

/// Writes a line to standard error (progress and diagnostics; standard output carries results).
public func printError(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
}

/// Writes `text` to standard error as it is, without a newline (a progress line redrawn in place).
public func printErrorRaw(_ text: String) {
    var text = text
    text.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
}
