import Foundation
import GPULedgerCore
import GPULedgerHTTP
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

    static func money(_ exact: Decimal) -> String { money("\(exact)") }

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
        .scroll{overflow-x:auto}.skip{position:absolute;left:-999px}.skip:focus{left:.5rem;top:.5rem;background:#fff;padding:.3rem}
        .legend span{display:inline-block;margin-right:1rem}.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-1px}
        form.inline{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end;margin:.5rem 0 1rem}form.inline label{display:flex;flex-direction:column;font-size:.85rem;color:var(--muted)}
        select{font:inherit;padding:.35rem}.refused{color:var(--bad)}td:first-child a{white-space:nowrap}th a{color:inherit}.meter{display:inline-block;width:6rem;height:.6rem;background:#e8ebf1;vertical-align:middle}
        .meter b{display:block;height:100%;background:var(--accent)}.meter b.at_risk{background:var(--warn)}.meter b.exceeded{background:var(--bad)}
        @media (max-width:600px){main{padding:.75rem}header{padding:.5rem .75rem}nav a{margin-right:.6rem}.big{font-size:1.3rem}}
        """

    /// The console's icon: a ledger's bars.
    static let favicon = """
        <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2456c9"/>\
        <rect x="3" y="8" width="2" height="5" fill="#fff"/><rect x="7" y="5" width="2" height="8" fill="#fff"/><rect x="11" y="3" width="2" height="10" fill="#fff"/></svg>
        """

    /// The pages in the navigation: (path, name, for tenant keys too).
    static let pages: [(path: String, name: String, tenants: Bool)] = [
        ("/", "Overview", true), ("/tenants", "Tenants", true), ("/models", "Models", true),
        ("/budgets", "Budgets", true), ("/capacity", "Capacity", false),
    ]

    /// A whole page: the header with the navigation and sign-out (a form with the CSRF token), then `body`.
    static func page(title: String, current: String, session: SessionStore.Session?, body: String) -> String {
        var header = "<a class=\"skip\" href=\"#main\">Skip to content</a><header><strong>gpuledger</strong>"
        if let session {
            header += "<nav aria-label=\"Pages\">"
            for p in pages where p.tenants || session.principal.role != .tenant {
                header += "<a href=\"\(p.path)\"\(p.path == current ? " aria-current=\"page\"" : "")>\(p.name)</a>"
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
            <title>\(escape(title)) · gpuledger</title><link rel="icon" href="/favicon.svg" type="image/svg+xml"><style>\(style)</style></head>
            <body>\(header)<main id="main">\(body)</main></body></html>
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

extension HTML {
    /// A table in a horizontally scrolling box (phone widths). `headers`: (HTML, numeric);
    /// cells are HTML already escaped.
    static func table(id: String? = nil, caption: String? = nil, headers: [(String, Bool)], rows: [[String]], empty: String = "Nothing here.") -> String {
        var t = "<div class=\"scroll\"><table\(id.map { " id=\"\($0)\"" } ?? "")>"
        if let caption { t += "<caption class=\"muted\">\(escape(caption))</caption>" }
        t += "<thead><tr>" + headers.map { "<th\($0.1 ? " class=\"n\"" : "") scope=\"col\">\($0.0)</th>" }.joined() + "</tr></thead><tbody>"
        for row in rows {
            t += "<tr>" + zip(row, headers).map { "<td\($0.1.1 ? " class=\"n\"" : "")>\($0.0)</td>" }.joined() + "</tr>"
        }
        if rows.isEmpty { t += "<tr><td colspan=\"\(headers.count)\" class=\"muted\">\(escape(empty))</td></tr>" }
        return t + "</tbody></table></div>"
    }

    static let palette = ["#2456c9", "#c2571a", "#198754", "#8e44ad", "#b3261e", "#0f7c8c", "#6b6b00", "#5b6475"]

    struct Series {
        var name: String
        var values: [Double?]
        var dashed = false
        var color: String? = nil
    }

    /// A line chart over `labels` as inline SVG: one line per series (a gap where a value is
    /// nil), an optional shaded band and a horizontal reference line, the y scale's top and
    /// bottom, the first and last labels, and a legend. The numbers go in a table next to it.
    static func lines(_ series: [Series], labels: [String], title: String, unit: (Double) -> String,
                      band: (name: String, lower: [Double?], upper: [Double?])? = nil,
                      reference: (name: String, value: Double)? = nil) -> String {
        let width = 900.0, height = 240.0, left = 84.0, top = 10.0, bottom = 30.0
        let all = series.flatMap { $0.values.compactMap { $0 } } + (band?.upper.compactMap { $0 } ?? []) + (reference.map { [$0.value] } ?? [])
        let maxValue = max(all.max() ?? 0, 1e-9) * 1.05
        let n = max(labels.count - 1, 1)
        func x(_ i: Int) -> Double { left + (width - left - 4) * Double(i) / Double(n) }
        func y(_ v: Double) -> Double { top + (height - top - bottom) * (1 - v / maxValue) }
        func fmt(_ d: Double) -> String { String(format: "%.1f", d) }
        var svg = "<svg viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(escape(title))\"><title>\(escape(title))</title>"
        svg += "<line x1=\"\(fmt(left))\" x2=\"\(fmt(width - 4))\" y1=\"\(fmt(y(0)))\" y2=\"\(fmt(y(0)))\" stroke=\"#d9dde5\"/>"
        svg += "<text x=\"\(fmt(left - 6))\" y=\"\(fmt(top + 10))\" font-size=\"12\" fill=\"#5b6475\" text-anchor=\"end\">\(escape(unit(maxValue)))</text>"
        svg += "<text x=\"\(fmt(left - 6))\" y=\"\(fmt(y(0)))\" font-size=\"12\" fill=\"#5b6475\" text-anchor=\"end\">\(escape(unit(0)))</text>"
        if let band {
            var upper: [String] = [], lower: [String] = []
            for i in labels.indices {
                if i < band.upper.count, i < band.lower.count, let u = band.upper[i], let l = band.lower[i] {
                    upper.append("\(fmt(x(i))),\(fmt(y(u)))"); lower.append("\(fmt(x(i))),\(fmt(y(l)))")
                }
            }
            if !upper.isEmpty {
                svg += "<polygon points=\"\((upper + lower.reversed()).joined(separator: " "))\" fill=\"#2456c9\" fill-opacity=\"0.15\"><title>\(escape(band.name))</title></polygon>"
            }
        }
        if let reference {
            svg += "<line x1=\"\(fmt(left))\" x2=\"\(fmt(width - 4))\" y1=\"\(fmt(y(reference.value)))\" y2=\"\(fmt(y(reference.value)))\" stroke=\"#b3261e\" stroke-dasharray=\"2 3\"><title>\(escape(reference.name)): \(escape(unit(reference.value)))</title></line>"
        }
        for (k, s) in series.enumerated() {
            let color = s.color ?? palette[k % palette.count]
            var runs: [[String]] = [[]]
            for (i, v) in s.values.enumerated() where i < labels.count {
                if let v { runs[runs.count - 1].append("\(fmt(x(i))),\(fmt(y(v)))") } else if !runs[runs.count - 1].isEmpty { runs.append([]) }
            }
            for run in runs where !run.isEmpty {
                let points = run.count == 1 ? [run[0], run[0]] : run
                svg += "<polyline points=\"\(points.joined(separator: " "))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(s.dashed ? " stroke-dasharray=\"6 4\"" : "")><title>\(escape(s.name))</title></polyline>"
            }
        }
        if let first = labels.first, let last = labels.last {
            svg += "<text x=\"\(fmt(left))\" y=\"\(Int(height - 8))\" font-size=\"12\" fill=\"#5b6475\">\(escape(first))</text>"
            svg += "<text x=\"\(Int(width - 4))\" y=\"\(Int(height - 8))\" font-size=\"12\" fill=\"#5b6475\" text-anchor=\"end\">\(escape(last))</text>"
        }
        svg += "</svg><p class=\"legend\">"
        for (k, s) in series.enumerated() { svg += "<span><i style=\"background:\(s.color ?? palette[k % palette.count])\"></i>\(escape(s.name))</span>" }
        if let band { svg += "<span><i style=\"background:#2456c9;opacity:.25\"></i>\(escape(band.name))</span>" }
        if let reference { svg += "<span><i style=\"background:#b3261e\"></i>\(escape(reference.name))</span>" }
        return svg + "</p>"
    }

    /// A chart axis's dollars: `$950`, `$14.9k`, `$1.25M`.
    static func compactDollars(_ x: Double) -> String {
        switch abs(x) {
        case 1e6...: String(format: "$%.2fM", x / 1e6)
        case 1e4...: String(format: "$%.1fk", x / 1e3)
        case 1e3...: String(format: "$%.2fk", x / 1e3)
        default: String(format: "$%.0f", x)
        }
    }

    /// Rows per page of the long tables (budgets, tenants): keeps a page well under 300 KB.
    static let pageSize = 100

    /// The page `page` (from 1) of `count` rows: the range of rows, and the navigation between
    /// pages (`link(n)`: the address of page n), empty when everything fits on one.
    static func pages(count: Int, page: Int, link: (Int) -> String) -> (rows: Range<Int>, nav: String) {
        let last = max((count + pageSize - 1) / pageSize, 1)
        let p = min(max(page, 1), last)
        let rows = min((p - 1) * pageSize, count)..<min(p * pageSize, count)
        guard last > 1 else { return (rows, "") }
        var nav = "<nav aria-label=\"Table pages\" class=\"pager\"><span>Rows \(rows.lowerBound + 1) to \(rows.upperBound) of \(count)</span> "
        if p > 1 { nav += "<a href=\"\(link(p - 1))\" rel=\"prev\">← previous</a> " }
        if p < last { nav += "<a href=\"\(link(p + 1))\" rel=\"next\">next →</a>" }
        return (rows, nav + "</nav>")
    }

    /// A number with a fixed number of decimals (`-` for nil).
    static func number(_ x: Double?, _ places: Int = 1) -> String { x.map { String(format: "%.\(places)f", $0) } ?? "—" }

    /// An integer with thousands separators.
    static func count(_ n: Int64) -> String {
        let digits = String(n.magnitude)
        var out = "", i = 0
        for c in digits.reversed() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(c); i += 1
        }
        return (n < 0 ? "-" : "") + String(out.reversed())
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
