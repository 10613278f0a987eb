import Foundation

/// A chargeback as a FinOps FOCUS 1.2 CSV: one row per line of the bill (a tenant's usage or
/// idle share, or a pool's unallocated idle, for one pricing key and rate segment).
///
/// BilledCost and EffectiveCost are the line's cents (they add up to the chargeback's total);
/// ListCost and ContractedCost are ListUnitPrice/ContractedUnitPrice × PricingQuantity exactly,
/// before rounding to cents. Quantities are GPU-hours to 12 places; a token-share line (a tenant's
/// usage in a pool that allocates by tokens, `x_ChargeType` `token_share`) is priced in the
/// GPU-hours its share pays for and consumes tokens (`ConsumedUnit` `Tokens`). Custom columns start `x_`.
public enum FOCUSExport {
    public static let mandatoryColumns = [
        "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity", "PricingUnit",
        "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd",
        "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeClass", "ChargeDescription",
        "InvoiceIssuerName", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
    ]
    public static let otherColumns = [
        "ConsumedQuantity", "ConsumedUnit", "ListUnitPrice", "ContractedUnitPrice", "SubAccountId", "SubAccountName",
        "SkuId", "RegionId", "Tags",
        "x_ChargeType", "x_Pool", "x_Accelerator", "x_Tier", "x_GPUSeconds", "x_Requests", "x_Errors",
        "x_InputTokens", "x_OutputTokens", "x_Tokens",
    ]
    public static var columns: [String] { mandatoryColumns + otherColumns }

    /// FOCUS date-times: `YYYY-MM-DDTHH:mm:ssZ`.
    public static func time(_ t: Timestamp) -> String {
        String(t.rfc3339.prefix(19)) + "Z"
    }

    public static func csv(_ chargeback: Chargeback, billingAccountID: String, billingAccountName: String) -> String {
        var out = CSVText.line(columns)
        let period = chargeback.period
        for line in chargeback.lines {
            let item = line.item
            guard let rate = item.usdPerGPUHour else { continue }
            let tokenShare = item.kind == .usage && item.tokenShareGPUSeconds != nil
            let hours = CentRounding.rounded((item.tokenShareGPUSeconds ?? item.gpuSeconds) / 3600, scale: 12, .plain)
            let listCost = rate * hours
            let start = max(item.segmentStart ?? period.start, period.start)
            let end = min(item.segmentEnd ?? period.end, period.end)
            let provider = item.provider ?? "unknown"
            let sku = [provider, item.region ?? "", item.accelerator, item.tier ?? ""].joined(separator: "/")
            let where_ = item.pool.map { "pool \($0)" } ?? "no registered pool"
            let chargeType: String
            let description: String
            switch item.kind {
            case .usage where tokenShare:
                chargeType = "token_share"
                description = "Token-weighted share of \(item.accelerator) capacity of \(where_), at \(plain(rate)) USD per GPU-hour"
            case .usage:
                chargeType = "usage"
                description = "\(item.accelerator) GPU usage, \(where_), at \(plain(rate)) USD per GPU-hour"
            case .idle:
                chargeType = "idle_share"
                description = "Share of idle \(item.accelerator) capacity of \(where_), at \(plain(rate)) USD per GPU-hour"
            default:
                chargeType = "unallocated_idle"
                description = "Idle \(item.accelerator) capacity of \(where_) in hours without usage, at \(plain(rate)) USD per GPU-hour"
            }
            var tags: [String] = ["\"gpuledger/charge\":\(JSONText.quoted(chargeType))", "\"gpuledger/accelerator\":\(JSONText.quoted(item.accelerator))"]
            if let pool = item.pool { tags.append("\"gpuledger/pool\":\(JSONText.quoted(pool))") }
            let usage = item.kind == .usage
            let fields: [String] = [
                plain(line.cost, minScale: 2), plain(line.cost, minScale: 2), plain(listCost), plain(listCost),
                plain(hours), "GPU-Hours",
                billingAccountID, billingAccountName, "USD", time(period.start), time(period.end),
                time(start), time(end), "Usage", "", description,
                billingAccountName, provider, provider, "AI and Machine Learning", "GPU Inference",
                tokenShare ? String(item.inputTokens + item.outputTokens) : plain(hours), tokenShare ? "Tokens" : "GPU-Hours",
                plain(rate), plain(rate), item.tenant ?? "", item.tenant ?? "",
                sku, item.region ?? "", "{" + tags.joined(separator: ",") + "}",
                chargeType, item.pool ?? "", item.accelerator, item.tier ?? "", plain(item.gpuSeconds),
                usage ? String(item.requests) : "", usage ? String(item.errors) : "",
                usage ? String(item.inputTokens) : "", usage ? String(item.outputTokens) : "",
                usage ? String(item.inputTokens + item.outputTokens) : "",
            ]
            out += CSVText.line(fields)
        }
        return out
    }

    /// A decimal as plain text (no exponent, no grouping), with at least `minScale` places.
    public static func plain(_ d: Decimal, minScale: Int = 0) -> String {
        var text = NSDecimalNumber(decimal: d).description(withLocale: Locale(identifier: "en_US_POSIX"))
        if text.contains("e") || text.contains("E") { text = String(describing: d) }
        if minScale > 0 {
            let places = text.firstIndex(of: ".").map { text.distance(from: $0, to: text.endIndex) - 1 } ?? -1
            if places < 0 { text += "." + String(repeating: "0", count: minScale) }
            else if places < minScale { text += String(repeating: "0", count: minScale - places) }
        }
        return text
    }
}
