import CSV
import Foundation

/// The accelerator names in the rate cards: a usage record must name one of them.
enum AcceleratorNames {
    /// nil when the folder holds no rate card (then any name is accepted, with a warning).
    static func load(from directory: String) throws -> Set<String>? {
        let fm = FileManager.default
        guard let files = try? fm.contentsOfDirectory(atPath: directory) else { return nil }
        var names = Set<String>()
        for file in files.sorted() where file.hasSuffix(".csv") {
            let path = directory + "/" + file
            guard let stream = InputStream(fileAtPath: path) else { continue }
            let reader = try CSVReader(stream: stream, hasHeaderRow: true, trimFields: true)
            guard let header = reader.headerRow, let column = header.firstIndex(of: "accelerator") else { continue }
            while let row = reader.next() {
                if column < row.count, !row[column].isEmpty { names.insert(row[column]) }
            }
        }
        return names.isEmpty ? nil : names
    }
}
