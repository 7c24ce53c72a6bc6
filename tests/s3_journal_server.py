"""moto's S3 server with a write-ahead journal, so that a killed server restarts with its data.

    python tests/s3_journal_server.py --port PORT --journal FILE

moto keeps everything in memory and its own recorder drops chunked request bodies (pyarrow
uploads parts with `Transfer-Encoding: chunked`). This wraps moto's WSGI application: each
write that succeeds (PUT, POST, DELETE) is appended to the journal with its body as the
application read it, and at start the journal is replayed into the new process before it
serves. A multipart upload's replayed creation returns a new upload id; later requests of
that upload are rewritten to it. Test-only (tests/s3_server.py starts it).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

_UPLOAD_ID = re.compile(rb"<UploadId>([^<]+)</UploadId>")


class Journal:
    """The WSGI middleware (module docstring)."""

    def __init__(self, app: Callable, path: Path) -> None:
        self.app, self.path = app, path
        self.lock = threading.Lock()
        self.renamed: dict[str, str] = {}  # journalled upload id -> the replayed one

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] in ("GET", "HEAD") or environ.get("PATH_INFO", "").startswith("/moto-api"):
            return self.app(environ, start_response)
        length = environ.get("CONTENT_LENGTH")
        if length:
            body = environ["wsgi.input"].read(int(length))
        elif environ.get("wsgi.input_terminated"):  # chunked: the dev server de-chunks it up to its end
            body = environ["wsgi.input"].read()
        else:
            body = b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        status: list[str] = []

        def capture(code: str, headers: list, exc_info: Any = None) -> Callable:
            status.append(code)
            return start_response(code, headers, exc_info)

        chunks = list(self.app(environ, capture))
        if status and status[0][:1] == "2":
            self._append(environ, body, b"".join(chunks))
        return chunks

    def _append(self, environ: dict, body: bytes, response: bytes) -> None:
        entry = {
            "method": environ["REQUEST_METHOD"],
            "path": environ.get("PATH_INFO", ""),
            "query": environ.get("QUERY_STRING", ""),
            "headers": {k: v for k, v in environ.items() if k.startswith("HTTP_") or k == "CONTENT_TYPE"},
            "body": base64.b64encode(body).decode(),
        }
        found = _UPLOAD_ID.search(response)
        if found and "uploads" in entry["query"].split("&"):
            entry["upload_id"] = found.group(1).decode()
        with self.lock, open(self.path, "a") as journal:
            journal.write(json.dumps(entry) + "\n")

    def replay(self) -> int:
        """Apply the journal to the fresh application; how many writes were replayed."""
        from werkzeug.test import EnvironBuilder

        lines = self.path.read_text().splitlines() if self.path.exists() else []
        replayed = 0
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # torn by the kill
            query = entry["query"]
            for old, new in self.renamed.items():
                query = query.replace(f"uploadId={old}", f"uploadId={new}")
            builder = EnvironBuilder(
                path=entry["path"], method=entry["method"], query_string=query, data=base64.b64decode(entry["body"])
            )
            environ = builder.get_environ()
            environ.update(entry["headers"])
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ["CONTENT_LENGTH"] = str(len(base64.b64decode(entry["body"])))
            response = b"".join(self.app(environ, lambda *args: None))
            found = _UPLOAD_ID.search(response)
            if "upload_id" in entry and found:
                self.renamed[entry["upload_id"]] = found.group(1).decode()
            replayed += 1
        return replayed


def main(argv: list[str] | None = None) -> int:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--journal", required=True)
    args = parser.parse_args(argv)
    import os

    os.environ.setdefault("MOTO_PORT", str(args.port))
    journal = Journal(DomainDispatcherApplication(create_backend_app), Path(args.journal))
    replayed = journal.replay()
    print(f"journal: {replayed} write(s) replayed", flush=True)
    run_simple("127.0.0.1", args.port, journal, threaded=True, request_handler=MotoRequestHandler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
