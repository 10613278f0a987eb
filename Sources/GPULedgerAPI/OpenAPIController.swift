import GPULedgerHTTP
import Foundation
import Hummingbird

/// `GET /openapi.yaml`: the OpenAPI 3.1 description in `Sources/GPULedgerAPI/Resources/`,
/// served byte for byte as it is in the repository.
struct OpenAPIController {
    /// The file, from the resource bundle SwiftPM puts next to the executable; nil when that
    /// bundle was not installed with the binary.
    static let document: Data? = {
        // Found without `Bundle.module`, which stops the process when the bundle is missing.
        let name = "gpuledger_GPULedgerAPI.resources"
        var folders: [URL] = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
        if let executable = Bundle.main.executableURL?.resolvingSymlinksInPath() {
            folders.insert(executable.deletingLastPathComponent(), at: 0)
        }
        for folder in folders {
            if let data = try? Data(contentsOf: folder.appendingPathComponent(name).appendingPathComponent("openapi.yaml")) { return data }
        }
        return nil
    }()

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("openapi.yaml") { _, _ -> Response in
            guard let document = Self.document else {
                throw AppError.notFound("openapi.yaml is not installed next to the executable (gpuledger_GPULedgerAPI.resources); it is in the repository at Sources/GPULedgerAPI/Resources/openapi.yaml")
            }
            return Response(status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: document)))
        }
    }
}
