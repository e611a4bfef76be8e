"""A minimal OpenLineage consumer for the tests: accepts POST /api/v1/lineage like Marquez and keeps each
event as a JSON file, so the runner (another process) can send to it and any xdist worker can read."""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ENDPOINT = "/api/v1/lineage"


class LineageCollector:
    def __init__(self, folder: Path, status: int = 201) -> None:
        self.folder = folder
        self.status = status
        folder.mkdir(parents=True, exist_ok=True)
        collector = self
        counter = itertools.count()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == ENDPOINT and collector.status < 300:
                    name = f"{next(counter):06d}.json"
                    (collector.folder / name).write_bytes(body)
                self.send_response(collector.status if self.path == ENDPOINT else 404)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LineageCollector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def received(folder: str | Path) -> list[dict[str, Any]]:
    """Every event the collector kept, in arrival order."""
    return [json.loads(path.read_text()) for path in sorted(Path(folder).glob("*.json"))]
