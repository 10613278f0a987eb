import Foundation

/// A chargeback as a FinOps FOCUS 1.2 CSV: one row per line of the bill (a tenant's usage or
/// idle share, or a pool's unallocated idle, for one pricing key and rate segment).
///
/// BilledCost and EffectiveCost are the line's cents (they add up to the chargeback's total);
/// ListCost and ContractedCost are ListUnitPrice/ContractedUnitPrice × PricingQuantity exactly,
/// before rounding to cents. Every decimal column is written with a decimal point (`1440.0`), so
/// that a reader that infers column types (the FOCUS validator does) reads decimals, not integers.
/// Quantities are GPU-hours to 12 places; a token-share line (a tenant's
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
        "SkuId", "SkuPriceId", "PricingCategory", "RegionId", "ResourceId", "ResourceName", "Tags",
        "ChargeFrequency", "InvoiceId", "ServiceSubcategory",
        "x_ChargeType", "x_Pool", "x_Accelerator", "x_Tier", "x_GPUSeconds", "x_Requests", "x_Errors",
        "x_InputTokens", "x_OutputTokens", "x_Tokens", "x_CorrectedPeriod",
    ]
    public static var columns: [String] { mandatoryColumns + otherColumns }

    /// FOCUS 1.2's ServiceSubcategory for LLM inference (under ServiceCategory "AI and Machine Learning").
    public static let serviceSubcategory = "Generative AI"

    /// FOCUS date-times: `YYYY-MM-DDTHH:mm:ssZ`.
    public static func time(_ t: Timestamp) -> String {
        String(t.rfc3339.prefix(19)) + "Z"
    }

    /// FOCUS's PricingCategory of a rate tier: list prices are Standard, spot prices Dynamic,
    /// reserved and committed prices Committed.
    static func pricingCategory(_ tier: String?) -> String {
        switch tier {
        case Tier.spot.rawValue: "Dynamic"
        case Tier.reserved.rawValue, Tier.committed.rawValue: "Committed"
        default: "Standard"
        }
    }

    /// The roles as FOCUS means them for an internal platform charging back: the platform team
    /// (`billingAccountName`) issues the invoice and provides the service; the cloud or hardware
    /// vendor of the line's rate is the publisher.
    public static func csv(_ chargeback: Chargeback, billingAccountID: String, billingAccountName: String) -> String {
        var out = CSVText.line(columns)
        let period = chargeback.period
        let invoiceID = chargeback.invoice?.id ?? ""
        let common: [String: String] = [
            "BillingAccountId": billingAccountID, "BillingAccountName": billingAccountName, "BillingCurrency": "USD",
            "BillingPeriodStart": time(period.start), "BillingPeriodEnd": time(period.end), "ChargeCategory": "Usage",
            "InvoiceIssuerName": billingAccountName, "ProviderName": billingAccountName,
            "ServiceCategory": "AI and Machine Learning", "ServiceName": "GPU Inference", "ServiceSubcategory": serviceSubcategory,
            "ChargeFrequency": "Usage-Based", "InvoiceId": invoiceID,
        ]
        func row(_ fields: [String: String]) -> String {
            CSVText.line(columns.map { fields[$0] ?? common[$0] ?? "" })
        }
        for line in chargeback.lines {
            let item = line.item
            guard let rate = item.usdPerGPUHour else { continue }
            let tokenShare = item.kind == .usage && item.tokenShareGPUSeconds != nil
            let hours = CentRounding.rounded((item.tokenShareGPUSeconds ?? item.gpuSeconds) / 3600, scale: 12, .plain)
            let listCost = rate * hours
            let start = max(item.segmentStart ?? period.start, period.start)
            let end = min(item.segmentEnd ?? period.end, period.end)
            let vendor = item.provider ?? "unknown"
            let sku = [vendor, item.region ?? "", item.accelerator, item.tier ?? ""].joined(separator: "/")
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
            out += row([
                "BilledCost": plain(line.cost, minScale: 2), "EffectiveCost": plain(line.cost, minScale: 2),
                "ListCost": plain(listCost, minScale: 2), "ContractedCost": plain(listCost, minScale: 2),
                "PricingQuantity": plain(hours, minScale: 1), "PricingUnit": "GPU-Hours",
                "ChargePeriodStart": time(start), "ChargePeriodEnd": time(end), "ChargeDescription": description,
                "PublisherName": vendor,
                "ConsumedQuantity": plain(tokenShare ? Decimal(item.inputTokens + item.outputTokens) : hours, minScale: 1),
                "ConsumedUnit": tokenShare ? "Tokens" : "GPU-Hours",
                "ListUnitPrice": plain(rate, minScale: 1), "ContractedUnitPrice": plain(rate, minScale: 1),
                "SubAccountId": item.tenant ?? "", "SubAccountName": item.tenant ?? "",
                "SkuId": sku, "SkuPriceId": sku + "@" + (item.segmentStart.map(time) ?? "pool-\(item.pool ?? "")"),
                "PricingCategory": pricingCategory(item.tier), "RegionId": item.region ?? "",
                "ResourceId": item.pool.map { "gpuledger/pool/\($0)" } ?? "", "ResourceName": item.pool ?? "",
                "Tags": "{" + tags.joined(separator: ",") + "}",
                "x_ChargeType": chargeType, "x_Pool": item.pool ?? "", "x_Accelerator": item.accelerator, "x_Tier": item.tier ?? "",
                "x_GPUSeconds": plain(item.gpuSeconds),
                "x_Requests": usage ? String(item.requests) : "", "x_Errors": usage ? String(item.errors) : "",
                "x_InputTokens": usage ? String(item.inputTokens) : "", "x_OutputTokens": usage ? String(item.outputTokens) : "",
                "x_Tokens": usage ? String(item.inputTokens + item.outputTokens) : "",
            ])
        }
        // Corrections of closed months (FOCUS ChargeClass "Correction", in the corrected month's
        // charge period): what the ledger says of that month now, less what was invoiced.
        for c in chargeback.corrections {
            let who = c.tenant.map { "tenant \($0)" } ?? "unallocated idle capacity"
            out += row([
                "BilledCost": plain(c.cost, minScale: 2), "EffectiveCost": plain(c.cost, minScale: 2),
                "ListCost": plain(c.cost, minScale: 2), "ContractedCost": plain(c.cost, minScale: 2),
                "ChargePeriodStart": time(c.period.start), "ChargePeriodEnd": time(c.period.end), "ChargeClass": "Correction",
                "ChargeDescription": "Correction of \(c.period) for \(who): the ledger's figure for \(c.period) now, less its invoice and earlier corrections",
                "PublisherName": billingAccountName,
                "SubAccountId": c.tenant ?? "", "SubAccountName": c.tenant ?? "",
                "Tags": "{\"gpuledger/charge\":\"correction\",\"gpuledger/corrects\":\(JSONText.quoted(c.period.description))}",
                "x_ChargeType": "correction", "x_CorrectedPeriod": c.period.description,
            ])
        }
        // A month without any charge still says so in one zero line (an Adjustment of 0.00):
        // a FOCUS file of no rows leaves a reader (and the validator) nothing to check.
        if out == CSVText.line(columns) {
            out += row([
                "BilledCost": "0.00", "EffectiveCost": "0.00", "ListCost": "0.00", "ContractedCost": "0.00",
                "PricingQuantity": "0.0", "PricingUnit": "GPU-Hours", "ChargeCategory": "Adjustment", "ChargeFrequency": "One-Time",
                "ChargePeriodStart": time(period.start), "ChargePeriodEnd": time(period.end),
                "ChargeDescription": "No charges in \(period): no capacity and no usage were recorded",
                "PublisherName": billingAccountName, "Tags": "{\"gpuledger/charge\":\"none\"}", "x_ChargeType": "none",
            ])
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
