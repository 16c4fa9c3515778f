"""A local stand-in for the Hugging Face Hub, on 127.0.0.1, for the download tests.

It answers what ``huggingface_hub`` asks of an endpoint when it fetches one file:
``HEAD``/``GET {endpoint}/[datasets/]{org}/{name}/resolve/{revision}/{path}``, with ``X-Repo-Commit``, an ``ETag``
(the sha256 for large "LFS" files, as the Hub does, else a git-style sha1) and ``Content-Length``, and no
``X-Xet-Hash``, so the client uses plain HTTP. Missing repositories, revisions and files get a 404 with the Hub's
``X-Error-Code``. Faults can be injected per file path: ``truncate`` (the connection drops halfway, then the server
stops answering), ``wrong_size`` (HEAD announces more bytes than GET sends) and ``corrupt`` (same size, other bytes).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".ckpt", ".parquet", ".fna", ".bin")


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> {path: bytes}
    branches: dict[str, str] = field(default_factory=dict)  # branch or tag -> sha


class HubStandIn:
    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.faults: dict[str, str] = {}  # file path -> fault
        self.requests: list[tuple[str, str]] = []
        self._dead = False
        self._server: ThreadingHTTPServer | None = None

    # -- content -----------------------------------------------------------------------------------------------------
    def add_commit(self, repo_id: str, files: dict[str, bytes], repo_type: str = "model", branch: str = "main") -> str:
        """Add a commit holding ``files`` (the whole tree) and move ``branch`` to it; returns the commit sha."""
        repo = self.repos.setdefault((repo_type, repo_id), Repo())
        digest = hashlib.sha1(repr((repo_id, len(repo.commits), sorted(files))).encode())
        for path in sorted(files):
            digest.update(files[path])
        sha = digest.hexdigest()
        repo.commits[sha] = dict(files)
        repo.branches[branch] = sha
        return sha

    # -- server ------------------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> HubStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                standin._answer(self, body=False)

            def do_GET(self) -> None:
                standin._answer(self, body=True)

            def log_message(self, *args) -> None:
                pass

        self._dead = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> HubStandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- protocol ----------------------------------------------------------------------------------------------------
    def _answer(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlsplit(h.path).path)
        self.requests.append((h.command, path))
        if self._dead:  # after a dropped connection: accept, then close without a response
            h.close_connection = True
            return
        parts = path.strip("/").split("/")
        repo_type = "model"
        if parts and parts[0] == "datasets":
            repo_type, parts = "dataset", parts[1:]
        if len(parts) < 5 or parts[2] != "resolve":
            return self._error(h, 404, "RepoNotFound", "unknown route")
        repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            return self._error(h, 404, "RepoNotFound", f"Repository Not Found for url: {path}.")
        sha = repo.branches.get(revision, revision if revision in repo.commits else None)
        if sha is None:
            return self._error(h, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
        files = repo.commits[sha]
        if filename not in files:
            return self._error(h, 404, "EntryNotFound", f"Entry not found: {filename}", commit=sha)
        data = files[filename]
        lfs = filename.endswith(LFS_SUFFIXES)
        etag = hashlib.sha256(data).hexdigest() if lfs else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        fault = self.faults.get(filename)
        if body and fault == "corrupt":
            data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
        h.send_response(200)
        h.send_header("X-Repo-Commit", sha)
        h.send_header("ETag", f'"{etag}"')
        if lfs:
            h.send_header("X-Linked-Etag", f'"{etag}"')
        size = len(data) + 100 if fault == "wrong_size" and not body else len(data)
        h.send_header("Content-Length", str(size))
        h.send_header("Content-Type", "application/octet-stream")
        h.end_headers()
        if not body:
            return
        if fault == "truncate":
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            h.close_connection = True
            self._dead = True
            return
        h.wfile.write(data)

    def _error(
        self, h: BaseHTTPRequestHandler, status: int, code: str, message: str, commit: str | None = None
    ) -> None:
        payload = json.dumps({"error": message}).encode()
        h.send_response(status)
        h.send_header("X-Error-Code", code)
        h.send_header("X-Error-Message", message)
        if commit:
            h.send_header("X-Repo-Commit", commit)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(payload)
