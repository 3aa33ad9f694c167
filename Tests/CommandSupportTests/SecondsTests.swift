import CommandSupport
import Glibc
import Testing

@Suite struct SecondsTests {
    @Test func durationsKeepTheirFraction() {
        #expect(seconds(.milliseconds(1500)) == 1.5)
        #expect(seconds(.seconds(2) + .nanoseconds(250_000_000)) == 2.25)
        #expect(seconds(.zero) == 0)
        #expect(abs(seconds(.nanoseconds(1)) - 1e-9) < 1e-18)
    }

    @Test func negativeDurationsAreNegative() {
        #expect(seconds(.milliseconds(-1500)) == -1.5)
    }

    @Test func clockAndUsageTimesAreSeconds() {
        #expect(seconds(timespec(tv_sec: 3, tv_nsec: 500_000_000)) == 3.5)
        #expect(seconds(timeval(tv_sec: 1, tv_usec: 250_000)) == 1.25)
        var usage = rusage()
        usage.ru_utime = timeval(tv_sec: 1, tv_usec: 500_000)
        usage.ru_stime = timeval(tv_sec: 0, tv_usec: 250_000)
        #expect(cpuSeconds(usage) == 1.75)
    }
}
