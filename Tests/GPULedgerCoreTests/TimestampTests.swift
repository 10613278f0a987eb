import GPULedgerCore
import Testing

@Suite struct TimestampTests {
    @Test func parsesUTCAndOffsets() throws {
        let z = try #require(Timestamp.parseRFC3339("2026-11-28T10:00:00Z"))
        #expect(z.microseconds == 1_795_860_000 * 1_000_000)
        let plusOne = try #require(Timestamp.parseRFC3339("2026-11-28T11:00:00+01:00"))
        #expect(plusOne == z)
        let minus = try #require(Timestamp.parseRFC3339("2026-11-28T05:30:00-04:30"))
        #expect(minus == z)
        #expect(Timestamp.parseRFC3339("1970-01-01T00:00:00Z")?.microseconds == 0)
        #expect(Timestamp.parseRFC3339("1969-12-31T23:59:59.5Z")?.microseconds == -500_000)
    }

    @Test func fractionsKeepMicrosecondsAndTruncateBeyond() {
        #expect(Timestamp.parseRFC3339("1970-01-01T00:00:00.123456Z")?.microseconds == 123_456)
        #expect(Timestamp.parseRFC3339("1970-01-01T00:00:00.1234569Z")?.microseconds == 123_456)
        #expect(Timestamp.parseRFC3339("1970-01-01T00:00:00.5Z")?.microseconds == 500_000)
    }

    @Test(arguments: [
        "2026-11-28", "2026-11-28T10:00:00", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
        "2026-11-31T00:00:00Z", "2026-11-28T24:00:00Z", "2026-11-28T10:60:00Z", "2026-11-28T10:00:60Z",
        "2026-11-28T10:00:00.Z", "2026-11-28T10:00:00+0100", "26-11-28T10:00:00Z", "2026-11-28T10:00:00Zjunk",
        "", "0000-01-01T00:00:00Z",
    ])
    func rejectsNonRFC3339(_ text: String) {
        #expect(Timestamp.parseRFC3339(text) == nil)
    }

    @Test func leapDayOnlyInLeapYears() {
        #expect(Timestamp.parseRFC3339("2024-02-29T00:00:00Z") != nil)
        #expect(Timestamp.parseRFC3339("2000-02-29T00:00:00Z") != nil)
        #expect(Timestamp.parseRFC3339("1900-02-29T00:00:00Z") == nil)
    }

    @Test func formatsRoundTrip() throws {
        for text in ["2026-11-28T10:00:00Z", "2024-02-29T23:59:59.5Z", "1969-07-20T20:17:40.000001Z", "9999-12-31T23:59:59.999999Z"] {
            let t = try #require(Timestamp.parseRFC3339(text))
            #expect(t.rfc3339 == text)
        }
    }

    @Test func civilDaysAgreeBothWays() {
        for days in stride(from: Int64(-800_000), through: 800_000, by: 997) {
            let (y, m, d) = Timestamp.civil(fromDays: days)
            #expect(Timestamp.days(year: y, month: m, day: d) == days)
        }
    }
}
