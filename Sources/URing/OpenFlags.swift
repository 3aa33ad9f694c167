import CLinux

/// `open` flags that Swift's Glibc module leaves out (glibc declares them only under _GNU_SOURCE).
public enum OpenFlags {
    /// `O_DIRECT`: transfers skip the page cache. Memory, file offset and length must be aligned to
    /// the device's logical block size (``directAlignmentBytes`` is safe for every common device).
    public static let direct: Int32 = potluck_open_direct()
    /// An alignment that satisfies `O_DIRECT` on 512-byte and 4 KiB-sector devices alike.
    public static let directAlignmentBytes = 4096
}
