import Foundation
import TestSupport


/// Decodes `Tests/Fixtures/grpo/<name>` (written by scripts/ref/grpo_fixtures.py).
func loadFixture<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
    let url = Fixtures.url("grpo/\(name)")
    return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
}
