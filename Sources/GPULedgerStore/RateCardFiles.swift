import Foundation
import GPULedgerCore

/// Reads a folder of rate cards (`pricing/`) and checks them.
public enum RateCardFiles {
    /// Every `*.csv` in `directory`, checked; nil when the folder does not exist.
    public static func load(directory: String) throws -> RateCards.Loaded? {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else { return nil }
        let names = try fm.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".csv") }.sorted()
        var files: [(name: String, text: String)] = []
        for name in names {
            let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            guard let data = fm.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
                throw StoreError.configuration("\(path) cannot be read as UTF-8 text")
            }
            files.append((path, text))
        }
        return RateCards.load(files)
    }
}
