"""Stand-in colours for router tests: small HTTP servers answering with their name."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator

from traffic_forecast.core.config import DeployConfig
from traffic_forecast.deploy.state import COLOURS, port_of
from traffic_forecast.serving.guard import ARM_HEADER, EXPERIMENT_HEADER, VERSION_HEADER


class StandInColour(http.server.ThreadingHTTPServer):
    """Answers every request with its name as the model version; keeps what POSTs it was sent.

    ``bodies``: the POST bodies; ``tags``: the experiment and arm headers of each POST.
    """

    daemon_threads = True

    def __init__(self, name: str, port: int) -> None:
        self.name, self.bodies = name, list[bytes]()
        self.tags = list[tuple[str | None, str | None]]()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms wait

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.bodies.append(body)
                server.tags.append(
                    (self.headers.get(EXPERIMENT_HEADER), self.headers.get(ARM_HEADER))
                )
                self.do_GET()

            def do_GET(self) -> None:
                answer = json.dumps({"colour": server.name}).encode()
                self.send_response(200)
                self.send_header(VERSION_HEADER, server.name)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: object) -> None:
                pass

        server = self
        super().__init__(("127.0.0.1", port), Handler)
        self.handle_error = lambda *_: None  # type: ignore[method-assign]  # a client gone
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop serving and close the socket (twice is harmless)."""
        self.shutdown()
        self.server_close()


@contextlib.contextmanager
def stand_ins(cfg: DeployConfig) -> Iterator[dict[str, StandInColour]]:
    """Both colours on their ports of ``cfg``, stopped after."""
    colours = {colour: StandInColour(colour, port_of(colour, cfg)) for colour in COLOURS}
    try:
        yield colours
    finally:
        for colour in colours.values():
            colour.stop()
