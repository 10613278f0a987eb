/// Where the service reads the time of day: every default that means "now" (a report's `to`, the
/// current month, a forecast's `as_of`, budget gauges, session expiry, a record's future-skew
/// check) asks a `WallClock` passed in by its caller, never the system directly.
///
/// Production passes `.system`; tests pass `.fixed(_:)`, so that no test depends on the real date.
public struct WallClock: Sendable {
    private let read: @Sendable () -> Timestamp

    public init(_ read: @escaping @Sendable () -> Timestamp) { self.read = read }

    /// The current instant by this clock.
    public func now() -> Timestamp { read() }

    /// The system's real-time clock.
    public static let system = WallClock { Timestamp.systemNow() }

    /// A clock that always reads `instant`.
    public static func fixed(_ instant: Timestamp) -> WallClock { WallClock { instant } }
}
