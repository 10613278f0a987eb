import Foundation
import GPULedgerCore
import GPULedgerStore

/// Server-rendered HTML for the console: escaping, money, the page layout and inline SVG charts.
/// No JavaScript and nothing fetched from elsewhere: the pages work air-gapped.
enum HTML {
    /// Text safe inside an element or a double-quoted attribute.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// An exact decimal amount as currency, rounded to cents half up, with the exact value in
    /// `data-usd` and the tooltip: `<data class="usd" value="12.345678" title="$12.345678">$12.35</data>`.
    static func money(_ exact: String) -> String {
        let e = escape(exact)
        return "<data class=\"usd\" value=\"\(e)\" title=\"$\(e)\">\(dollars(exact))</data>"
    }

    /// `$1,234.57` from exact decimal text.
    static func dollars(_ exact: String) -> String {
        guard let d = Decimal(string: exact, locale: Locale(identifier: "en_US_POSIX")) else { return "$" + exact }
        var value = d, rounded = Decimal()
        NSDecimalRound(&rounded, &value, 2, .plain)
        let negative = rounded < 0
        let text = NSDecimalNumber(decimal: negative ? -rounded : rounded).description(withLocale: Locale(identifier: "en_US_POSIX"))
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        var whole = String(parts[0])
        let cents = parts.count > 1 ? String(parts[1]).padding(toLength: 2, withPad: "0", startingAt: 0) : "00"
        var grouped = ""
        while whole.count > 3 {
            grouped = "," + whole.suffix(3) + grouped
            whole = String(whole.dropLast(3))
        }
        return (negative ? "-$" : "$") + whole + grouped + "." + cents
    }

    static let style = """
        :root{--fg:#1d2330;--muted:#5b6475;--line:#d9dde5;--accent:#2456c9;--bg:#fff;--warn:#9a5b00;--bad:#b3261e}
        *{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
        header{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center;padding:.75rem 1.25rem;border-bottom:1px solid var(--line)}
        header strong{font-size:1.1rem}nav a{margin-right:1rem;color:var(--accent)}nav a[aria-current]{font-weight:600;color:var(--fg)}
        header form{margin-left:auto}main{padding:1rem 1.25rem;max-width:1100px}
        .cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(14rem,1fr));gap:1rem;margin:1rem 0}
        .card{border:1px solid var(--line);border-radius:8px;padding:.75rem 1rem}.card h2{font-size:.9rem;color:var(--muted);margin:0 0 .25rem}
        .big{font-size:1.6rem;font-weight:600}table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}
        th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line)}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
        .muted{color:var(--muted)}.at_risk{color:var(--warn)}.exceeded{color:var(--bad)}svg{max-width:100%;height:auto}
        button,input{font:inherit;padding:.4rem .7rem}a:focus,button:focus,input:focus{outline:3px solid #8fb0ff;outline-offset:1px}
        .empty{border:1px dashed var(--line);border-radius:8px;padding:1rem}pre{white-space:pre-wrap;background:#f5f6f8;padding:.75rem;border-radius:6px}
        """

    /// A whole page: the header with the navigation and sign-out (a form with the CSRF token), then `body`.
    static func page(title: String, current: String, session: SessionStore.Session?, body: String) -> String {
        var header = "<header><strong>gpuledger</strong>"
        if let session {
            header += "<nav aria-label=\"Pages\">"
            for (path, name) in [("/", "Overview")] {
                header += "<a href=\"\(path)\"\(path == current ? " aria-current=\"page\"" : "")>\(name)</a>"
            }
            header += "</nav><span class=\"muted\">\(escape(session.principal.name)) · \(session.principal.role.rawValue)"
            if let tenant = session.principal.tenant { header += " · tenant \(escape(tenant))" }
            header += "</span><form method=\"post\" action=\"/signout\"><input type=\"hidden\" name=\"csrf\" value=\"\(escape(session.csrfToken))\">"
            header += "<button type=\"submit\">Sign out</button></form>"
        }
        header += "</header>"
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
            <title>\(escape(title)) · gpuledger</title><style>\(style)</style></head>
            <body>\(header)<main>\(body)</main></body></html>
            """
    }

    /// A bar chart of (label, value) as inline SVG, with a text alternative; the numbers are in
    /// the table the caller puts next to it.
    static func bars(_ points: [(label: String, value: Double)], title: String) -> String {
        let width = 900.0, height = 220.0, top = 10.0, bottom = 30.0
        let maxValue = max(points.map(\.value).max() ?? 0, 0.01)
        let step = width / Double(max(points.count, 1))
        var svg = "<svg viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(escape(title))\"><title>\(escape(title))</title>"
        for (i, p) in points.enumerated() {
            let h = (height - top - bottom) * p.value / maxValue
            let x = Double(i) * step
            svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#2456c9\"><title>%@: %@</title></rect>",
                          x + 1, height - bottom - h, max(step - 2, 1), h, escape(p.label), String(format: "$%.2f", p.value))
        }
        if let first = points.first, let last = points.last {
            svg += "<text x=\"0\" y=\"\(Int(height - 8))\" font-size=\"12\" fill=\"#5b6475\">\(escape(first.label))</text>"
            svg += "<text x=\"\(Int(width))\" y=\"\(Int(height - 8))\" font-size=\"12\" fill=\"#5b6475\" text-anchor=\"end\">\(escape(last.label))</text>"
        }
        return svg + "</svg>"
    }
}

/// `application/x-www-form-urlencoded` bodies and `Cookie` headers.
enum FormData {
    static func parse(_ body: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            if let k = kv.first { out[decode(k)] = kv.count > 1 ? decode(kv[1]) : "" }
        }
        return out
    }

    static func cookies(_ header: String?) -> [String: String] {
        var out: [String: String] = [:]
        for part in (header ?? "").split(separator: ";") {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { out[kv[0].trimmingCharacters(in: .whitespaces)] = kv[1].trimmingCharacters(in: .whitespaces) }
        }
        return out
    }

    /// Equal strings, in time independent of where they differ.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in x.indices { diff |= x[i] ^ y[i] }
        return diff == 0
    }
}
