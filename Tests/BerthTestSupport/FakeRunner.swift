import Foundation

/// A runner written as a shell script, for tests that need a runner to crash, hang, or report
/// what it was given. What it does is chosen by words in its data file's name: `crash` exits 3,
/// `slow` runs for a minute (with a child process, to check the whole group is stopped),
/// anything else reports three steps and exits 0. It leaves `<job>.units` and `<job>.pid`
/// beside itself (the spec is a descriptor, `/proc/self/fd/3`, in no folder of its own).
public enum FakeRunner {
    public static let script = #"""
        #!/bin/sh
        spec="$1"
        data=$(sed -n 's/.*"data_path" *: *"\([^"]*\)".*/\1/p' "$spec")
        dir=$(dirname "$0")
        echo "$BERTH_UNITS" > "$dir/$BERTH_JOB_ID.units"
        echo $$ > "$dir/$BERTH_JOB_ID.pid"
        echo "fake runner: job $BERTH_JOB_ID on $BERTH_UNITS (devices $BERTH_DEVICES)" >&2
        case "$data" in
        *crash*)
            echo "fake runner: failing on purpose" >&2
            exit 3 ;;
        *slow*)
            sleep 60 &
            echo $! > "$dir/$BERTH_JOB_ID.child"
            wait ;;
        esac
        for i in 1 2 3; do
            echo "{\"event\":\"metric\",\"name\":\"train_loss\",\"step\":$i,\"epoch\":1,\"value\":$((10 - i))}"
            echo "{\"event\":\"progress\",\"fraction\":0.$((i * 3))}"
            echo "a line that is not an event"
            sleep ${FAKE_SLEEP:-0.3}
        done
        echo '{"event":"metric","name":"validation_loss","step":3,"epoch":1,"value":4.5}'
        echo '{"event":"usage","input_tokens":100,"output_tokens":0}'
        exit 0
        """#

    /// Writes the script into `directory` and returns the runner argv for the config.
    public static func install(in directory: TemporaryDirectory) throws -> [String] {
        let path = directory.file("fake-runner.sh")
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return ["/bin/sh", path, "{spec}"]
    }
}
