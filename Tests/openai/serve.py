#!/usr/bin/env python3
"""The serve argv of the OpenAI tests' berthd: berth-runner serve for every model but one.

    serve.py MARKER_DIR BERTH_RUNNER serve --model-dir D --port P --model-id M

For the model `test.slow-v1` it serves itself, streaming one token every 50 ms up to the
request's max_tokens: a stream a client can leave in the middle of. It sends no usage chunk,
as some servers do not, so berthd counts the tokens itself. When the client goes away (berthd closing its
connection, as it must when its own client leaves), it writes MARKER_DIR/cancelled-N with the
tokens it had sent, so a test can see that the request was cancelled at the serve process.
Every other model execs berth-runner with the same arguments. Standard library only: it runs
with the system's python3, as whoever berthd starts serve processes as.
"""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOW_MODEL = "test.slow-v1"


def main():
    marker_dir, runner, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    model = rest[rest.index("--model-id") + 1] if "--model-id" in rest else ""
    if model != SLOW_MODEL:
        os.execv(runner, [runner] + rest)
    port = int(rest[rest.index("--port") + 1])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            body = b'{"status":"ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            chat = self.path.endswith("/chat/completions")
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            sent = 0
            try:
                for i in range(min(int(request.get("max_tokens") or 2000), 2000)):
                    piece = " tick"
                    choice = {"index": 0, "finish_reason": None}
                    if chat:
                        choice["delta"] = {"content": piece}
                    else:
                        choice["text"] = piece
                    chunk = {"id": "slow-%d" % os.getpid(), "object": "chat.completion.chunk" if chat else "text_completion",
                             "created": int(time.time()), "model": SLOW_MODEL, "choices": [choice]}
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                    self.wfile.flush()
                    sent += 1
                    time.sleep(0.05)
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                with open(os.path.join(marker_dir, "cancelled-%d-%d" % (os.getpid(), time.monotonic_ns())), "w") as marker:
                    marker.write(str(sent))
            self.close_connection = True

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
