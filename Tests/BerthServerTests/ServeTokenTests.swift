import Foundation
import Testing

@testable import BerthServer

@Suite("Serve tokens")
struct ServeTokenTests {
    let secret = Data((0..<32).map { UInt8($0) })

    @Test("each serve process's token is its own, the same for the same secret, and another under another secret")
    func tokens() {
        let tokens = ServeTokens(secret: secret)
        let one = tokens.token(for: .reservation(1))
        #expect(one.count == 64 && one.allSatisfy(\.isHexDigit))
        #expect(one == ServeTokens(secret: secret).token(for: .reservation(1)))
        #expect(one != tokens.token(for: .reservation(2)))
        #expect(one != tokens.token(for: .onDemand("amazon.nova-micro-v1:0")))
        #expect(one != ServeTokens(secret: Data(repeating: 7, count: 32)).token(for: .reservation(1)))
        #expect(tokens.authorization(for: .reservation(1)) == ("Authorization", "Bearer \(one)"))
    }
}
