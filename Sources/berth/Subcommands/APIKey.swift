import ArgumentParser
import BerthClient
import BerthWire
import FoundationEssentials

extension Berth {
    struct APIKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "api-key",
            abstract: "Make, list and revoke API keys for the OpenAI routes over TCP ([openai] listen).",
            discussion: """
                A request to the [openai] listen address carries 'Authorization: Bearer KEY' and acts \
                as the key's owner: it may call that user's inference reservations and the on-demand \
                base models, as the user could over the socket. berthd keeps only a digest of each \
                key, so a key is shown once, when it is made.
                """,
            subcommands: [Create.self, List.self, Revoke.self]
        )

        struct Create: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "create",
                abstract: "Make a key and print it; it is not shown again."
            )

            @OptionGroup var global: GlobalOptions

            @Argument(help: "A name for the key, unique among your live keys (lowercase letters, digits and '-').")
            var name: String

            func validate() throws {
                try ArgumentCheck.reservationName(name, field: "name")
            }

            func run() throws {
                let reply = try global.call(APIKeyView.self, "POST", "/v1/api-keys", body: try .json(APIKeyCreateRequest(name: name)))
                global.show(reply) { key in
                    """
                    \(key.key ?? "")
                    API key '\(key.name)' for \(key.owner): keep it now, it is not shown again. \
                    Send it as Authorization: Bearer KEY to the [openai] listen address; revoke it with berth api-key revoke \(key.name).
                    """
                }
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "list",
                abstract: "List your live keys (an admin's: everyone's, or one owner's with --owner)."
            )

            @OptionGroup var global: GlobalOptions

            @Option(help: "Only this user's keys (admins).")
            var owner: String?

            func run() throws {
                let reply = try global.call(APIKeyList.self, "GET", "/v1/api-keys" + PercentEncoding.query([("owner", owner)]))
                global.show(reply) { list in
                    var table = Table("name", "owner", "created", "last used")
                    for key in list.apiKeys {
                        table.append(key.name, key.owner, Format.time(key.createdAt), Format.time(key.lastUsedAt))
                    }
                    return table.render()
                }
            }
        }

        struct Revoke: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "revoke",
                abstract: "Revoke a key: requests with it are refused (401) from now on."
            )

            @OptionGroup var global: GlobalOptions

            @Argument(help: "The key's name.")
            var name: String

            @Option(help: "Whose key (admins; default: yours).")
            var owner: String?

            func run() throws {
                let path = "/v1/api-keys/" + PercentEncoding.pathSegment(name) + PercentEncoding.query([("owner", owner)])
                let reply = try global.call(APIKeyView.self, "DELETE", path)
                global.show(reply) { key in "revoked API key '\(key.name)' of \(key.owner)" }
            }
        }
    }
}
