import Foundation

/// What fills a usage record's fields where an engine's spans lack gpuledger's attributes
/// (vLLM sets neither tenant, pool nor accelerator, nor the model in its current engine): a
/// default `pool`, `accelerator`, `model`, `tenant` and the name of a span or resource attribute
/// that holds the tenant, for every ingest key (`default`) or for the keys of one name (`keys`),
/// field by field. Read from the JSON file that `serve --otlp-mapping` names:
///
///     {"default": {"tenant_attribute": "user"},
///      "keys": {"vllm-prod": {"pool": "prod-h100", "model": "meta-llama/Llama-3.1-8B-Instruct"}}}
public struct OTLPMapping: Sendable, Equatable {
    public struct Defaults: Sendable, Equatable, Codable {
        public var pool: String?
        public var accelerator: String?
        public var model: String?
        public var tenant: String?
        public var tenantAttribute: String?

        public init(pool: String? = nil, accelerator: String? = nil, model: String? = nil, tenant: String? = nil, tenantAttribute: String? = nil) {
            self.pool = pool; self.accelerator = accelerator; self.model = model; self.tenant = tenant; self.tenantAttribute = tenantAttribute
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case pool, accelerator, model, tenant
            case tenantAttribute = "tenant_attribute"
        }

        /// `self`, with `other`'s fields where it has them.
        func overridden(by other: Defaults?) -> Defaults {
            guard let other else { return self }
            return Defaults(pool: other.pool ?? pool, accelerator: other.accelerator ?? accelerator, model: other.model ?? model,
                            tenant: other.tenant ?? tenant, tenantAttribute: other.tenantAttribute ?? tenantAttribute)
        }
    }

    public var defaults: Defaults
    /// By key name (`gpuledger keys create --name`).
    public var keys: [String: Defaults]

    public init(defaults: Defaults = Defaults(), keys: [String: Defaults] = [:]) {
        self.defaults = defaults
        self.keys = keys
    }

    /// The fallbacks for the spans sent with the key named `keyName`.
    public func fallbacks(forKey keyName: String) -> Defaults { defaults.overridden(by: keys[keyName]) }

    /// Reads the mapping file; the error says what is wrong and where.
    public static func load(path: String) throws -> OTLPMapping {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MappingError("cannot read the OTLP mapping file \(path)")
        }
        return try parse(data, source: path)
    }

    public static func parse(_ data: Data, source: String) throws -> OTLPMapping {
        let top: Any
        do { top = try JSONSerialization.jsonObject(with: data) } catch {
            throw MappingError("\(source): not JSON (\(error.localizedDescription))")
        }
        guard let object = top as? [String: Any] else { throw MappingError("\(source): must be a JSON object with \"default\" and/or \"keys\"") }
        for key in object.keys where key != "default" && key != "keys" {
            throw MappingError("\(source): unknown field \"\(key)\"; the fields are default, keys")
        }
        var mapping = OTLPMapping()
        if let d = object["default"] { mapping.defaults = try defaults(d, at: "\(source): default") }
        if let k = object["keys"] {
            guard let keys = k as? [String: Any] else { throw MappingError("\(source): keys must be an object of key name → fallbacks") }
            for (name, value) in keys { mapping.keys[name] = try defaults(value, at: "\(source): keys.\(name)") }
        }
        return mapping
    }

    static func defaults(_ value: Any, at place: String) throws -> Defaults {
        guard let object = value as? [String: Any] else { throw MappingError("\(place) must be an object") }
        let names = Defaults.CodingKeys.allCases.map(\.rawValue)
        var d = Defaults()
        for (key, v) in object {
            guard names.contains(key) else { throw MappingError("\(place): unknown field \"\(key)\"; the fields are \(names.joined(separator: ", "))") }
            guard let text = v as? String, !text.isEmpty else { throw MappingError("\(place).\(key) must be a non-empty string") }
            switch key {
            case "pool": d.pool = text
            case "accelerator": d.accelerator = text
            case "model": d.model = text
            case "tenant": d.tenant = text
            default: d.tenantAttribute = text
            }
        }
        return d
    }
}

public struct MappingError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
