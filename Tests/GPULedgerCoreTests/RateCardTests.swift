import Foundation
import GPULedgerCore
import Testing

@Suite struct RateCardTests {
    let header = "provider,region,accelerator,tier,usd_per_gpu_hour,effective_from,source\n"

    @Test func theShippedRateCardsLoadCleanAndCoverTheCommonAccelerators() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("pricing").path
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".csv") }
        let files = try names.map { (name: $0, text: try String(contentsOfFile: dir + "/" + $0, encoding: .utf8)) }
        let loaded = RateCards.load(files)
        #expect(loaded.errors.isEmpty, "\(loaded.errors)")
        for accel in ["H100", "H200", "A100-80GB", "A100", "L40S", "L4", "A10G", "T4", "V100"] {
            #expect(loaded.accelerators.contains(accel), "\(accel)")
            #expect(loaded.defaults.contains { $0.accelerator == accel }, "default for \(accel)")
        }
        #expect(Set(loaded.rates.map(\.provider)) == ["aws", "lambda", "nebius", "runpod"])
        #expect(loaded.rates.contains { $0.tier == .spot })
        // Per GPU-hour: AWS p5.48xlarge in us-east-1 at $98.32 for 8 GPUs.
        let p5 = loaded.rates.first { $0.provider == "aws" && $0.region == "us-east-1" && $0.accelerator == "H100" && $0.tier == .onDemand }
        #expect(p5?.usdPerGPUHour == "12.29")
    }

    @Test func eachKindOfBadRowIsNamedByFileLineAndColumn() {
        let bad = header + """
            aws,us-east-1,H100,on_demand,12.29,2025-03-02,ok row
            aws,us-east-1,H100,on_demand,abc,2025-03-02,non-numeric
            aws,us-east-1,H200,on_demand,-1,2025-03-02,negative
            aws,us-east-1,L4,retail,0.8,2025-03-02,unknown tier
            aws,us-east-1,T4,spot,0.2,2025-13-02,bad date
            aws,us-east-1,H100,on_demand,13,2025-03-02,duplicate of line 2
            aws,us-east-1,A10G,on_demand,1.0

            """
        let loaded = RateCards.load([(name: "pricing/bad.csv", text: bad), (name: "pricing/good.csv", text: header + "lambda,us-east-1,H100,on_demand,2.49,2025-01-01,x\n")])
        #expect(loaded.errors.map(\.description) == [
            "pricing/bad.csv:3:5: usd_per_gpu_hour must be a plain decimal such as 2.49 (got \"abc\")",
            "pricing/bad.csv:4:5: usd_per_gpu_hour must not be negative (got -1)",
            "pricing/bad.csv:5:4: unknown tier \"retail\"; use on_demand, spot, reserved or committed",
            "pricing/bad.csv:6:6: effective_from must be a date (2025-03-02) or an hour in UTC (2025-03-02T14:00:00Z); got \"2025-13-02\"",
            "pricing/bad.csv:7:1: duplicate rate: aws us-east-1 H100 on_demand from 2025-03-02T00:00:00Z is already given at pricing/bad.csv:2",
            "pricing/bad.csv:8:6: expected 7 fields, got 5",
        ])
        // Refused whole: no rate from the bad file, the good file's rate stays.
        #expect(loaded.rates.map(\.file) == ["pricing/good.csv"])
    }

    @Test func aMissingOrUnknownColumnRefusesTheFile() {
        let missing = RateCards.load([(name: "m.csv", text: "provider,region,accelerator,tier,usd_per_gpu_hour,source\naws,x,H100,spot,1,s\n")])
        #expect(missing.errors.map(\.description) == ["m.csv:1:7: missing column effective_from"])
        let unknown = RateCards.load([(name: "u.csv", text: header.dropLast() + ",note\n")])
        #expect(unknown.errors.map(\.description) == ["u.csv:1:8: unknown column \"note\"; the columns are provider,region,accelerator,tier,usd_per_gpu_hour,effective_from,source"])
    }

    @Test func duplicatesAcrossFilesRefuseTheLaterFile() {
        let row = "aws,us-east-1,H100,reserved,6.1,2026-01-01,contract\n"
        let loaded = RateCards.load([(name: "b.csv", text: header + row), (name: "a.csv", text: header + row)])
        #expect(loaded.errors.count == 1)
        #expect(loaded.errors.first?.file == "b.csv")
        #expect(loaded.rates.map(\.file) == ["a.csv"])
    }

    @Test func effectiveFromTakesADateOrAnHourInUTC() {
        #expect(RateCards.parseEffectiveFrom("2025-03-02") == Timestamp.parseRFC3339("2025-03-02T00:00:00Z"))
        #expect(RateCards.parseEffectiveFrom("2025-03-02T14:00:00Z") == Timestamp.parseRFC3339("2025-03-02T14:00:00Z"))
        #expect(RateCards.parseEffectiveFrom("2025-03-02T14:30:00Z") == nil)
        #expect(RateCards.parseEffectiveFrom("2025-03-02T14:00:00+01:00") == nil)
        #expect(RateCards.parseEffectiveFrom("March 2") == nil)
    }

    @Test func defaultsMustNameAKnownRate() {
        let card = header + "aws,us-east-1,H100,on_demand,12.29,2025-03-02,x\n"
        let good = RateCards.load([(name: "aws.csv", text: card), (name: "defaults.csv", text: "accelerator,provider,region,tier\nH100,aws,us-east-1,on_demand\n")])
        #expect(good.errors.isEmpty)
        #expect(good.defaults == [DefaultRate(accelerator: "H100", key: .init(provider: "aws", region: "us-east-1", accelerator: "H100", tier: .onDemand))])
        let bad = RateCards.load([(name: "aws.csv", text: card), (name: "defaults.csv", text: "accelerator,provider,region,tier\nH100,aws,us-west-2,on_demand\n")])
        #expect(bad.errors.map(\.description) == ["defaults.csv:2:1: no rate card has aws us-west-2 H100 on_demand"])
        #expect(bad.defaults.isEmpty)
    }

    @Test func plainDecimals() {
        for ok in ["0", "12", "2.49", "0.000001"] { #expect(RateCards.isPlainDecimal(ok), "\(ok)") }
        for bad in ["", "-1", "+1", "1.", ".5", "1e3", " 1", "1,5", "NaN"] { #expect(!RateCards.isPlainDecimal(bad), "\(bad)") }
    }
}

@Suite struct CSVRowsTests {
    @Test func quotedFieldsAndTheLinesRowsStartOn() {
        let rows = CSVRows.parse("a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",\"two\nlines\"\nlast,,\n")
        #expect(rows.map(\.line) == [1, 2, 4])
        #expect(rows[1].fields == ["x, y", "say \"hi\"", "two\nlines"])
        #expect(rows[2].fields == ["last", "", ""])
    }

    @Test func noTrailingNewlineAndBOM() {
        let rows = CSVRows.parse("\u{FEFF}h1,h2\n1,2")
        #expect(rows.map(\.fields) == [["h1", "h2"], ["1", "2"]])
    }
}

@Suite struct GroupKeyTests {
    /// Found by schemathesis (seed 869299028): "label:" followed by a key that begins with an
    /// emoji skin tone was refused, the modifier merging with the colon into one character.
    @Test func aLabelKeyMayBeginWithACombiningMark() throws {
        #expect(try GroupKey.parseList("model,label:\u{1F3FB}team") == [.model, .label("\u{1F3FB}team")])
        #expect(try GroupKey.parseList("label:" + String(repeating: "e\u{301}", count: 32)).count == 1)
        #expect(throws: ReportQueryError.self) { try GroupKey.parseList("label:" + String(repeating: "e\u{301}", count: 33)) }
    }
}
