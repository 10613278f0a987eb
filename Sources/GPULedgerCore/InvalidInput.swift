/// A client's input that breaks the rules, each problem with the field it is in; nothing was
/// changed. The API answers it as a 422 with `details`, the console as the form again.
public struct InvalidInput: Error, Sendable, Equatable {
    public struct Problem: Sendable, Equatable {
        public var field: String
        public var message: String
        public init(field: String, message: String) { self.field = field; self.message = message }
    }

    /// The error code of the answer (`invalid_budget`).
    public var code: String
    public var message: String
    public var problems: [Problem]

    public init(code: String, message: String, problems: [Problem]) {
        self.code = code
        self.message = message
        self.problems = problems
    }
}
