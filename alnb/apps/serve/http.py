"""The HTTP side of ``alnb serve``: the routes (:data:`ROUTES`), :func:`dispatch` of one request to the backend's
route method (basic auth, JSON body, 4xx/5xx answers), and the socket server (:class:`Server`, standard library
``ThreadingHTTPServer``: a thread per request, so ``/health`` answers while a prediction batch runs)."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import sys
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from alnb.apps.serve.common import DEFAULT_HOST, DEFAULT_PORT, MAX_BODY, RequestError
from alnb.core.workspace import WorkspaceError

ROUTES = {("GET", "/"): "health", ("GET", "/health"): "health", ("POST", "/setup"): "setup",
          ("POST", "/predict"): "predict", ("POST", "/webhook"): "webhook", ("POST", "/train"): "train",
          ("POST", "/job_status"): "job_status", ("GET", "/versions"): "versions"}


def dispatch(backend, method: str, path: str, headers=None, body: bytes | None = None) -> tuple:
    """``(status, payload, extra headers)`` for one request to ``backend`` (its ``auth``, ``log`` and one method per
    route of :data:`ROUTES`, called with the JSON body of a POST); never raises."""
    headers = headers or {}
    route = urllib.parse.urlsplit(path).path.rstrip("/") or "/"
    if backend.auth is not None and not _authorised(backend.auth, headers.get("Authorization")):
        return 401, {"error": "authentication required: this backend uses HTTP basic auth (Label Studio: "
                              "Settings > Model > the connection's Basic Authentication user and password)."}, {
            "WWW-Authenticate": 'Basic realm="alnb serve"'}
    name = ROUTES.get((method, route))
    if name is None:
        allowed = sorted(m for m, p in ROUTES if p == route)
        if allowed:
            return 405, {"error": f"{method} is not allowed on {route}; use {' or '.join(allowed)}."}, {
                "Allow": ", ".join(allowed)}
        return 404, {"error": f"no such endpoint {route}; this is an alnb ML backend for Label Studio "
                              f"({', '.join(sorted({p for _, p in ROUTES}))})."}, {}
    try:
        data = _json(body) if method == "POST" else None
        status, payload = getattr(backend, name)(data)
        return status, payload, {}
    except RequestError as e:
        return e.status, {"error": e.message}, {}
    except Exception as e:  # noqa: BLE001 - one bad request never takes the server down
        backend.log(f"[alnb serve] error in {method} {route}:\n{traceback.format_exc()}")
        return 500, {"error": f"internal error ({type(e).__name__}: {e}); the server keeps running, its log has "
                              f"the details."}, {}


def _authorised(auth: tuple, header) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        user, _, pw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    return hmac.compare_digest(user.encode(), auth[0].encode()) & hmac.compare_digest(pw.encode(), auth[1].encode())


def _json(body) -> dict:
    if not body:
        raise RequestError(400, "empty request body: send a JSON object (Content-Type: application/json).")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise RequestError(400, f"the request body is not JSON ({e}).") from None
    if not isinstance(data, dict):
        raise RequestError(400, f"the request body must be a JSON object, not a {type(data).__name__}.")
    return data


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "alnb-serve"

    def _serve(self, method: str):
        t0 = time.perf_counter()
        backend = self.server.backend
        status, payload, extra = self._answer(method, backend)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)
        why = f": {str(payload.get('error'))[:500]}" if status >= 400 else ""  # our own message, never a body
        backend.log(f"[alnb serve] {method} {urllib.parse.urlsplit(self.path).path} {status} "
                    f"({(time.perf_counter() - t0) * 1000:.0f} ms){why}")

    def _answer(self, method: str, backend) -> tuple:
        """Read the body (within :data:`MAX_BODY`) and ask the backend: ``(status, payload, extra headers)``."""
        n = self.headers.get("Content-Length")
        try:
            n = int(n) if n is not None else 0
        except ValueError:
            n = -1
        if n < 0:
            return 400, {"error": "bad Content-Length header."}, {}
        if n > MAX_BODY:
            self.close_connection = True
            return 413, {"error": f"request body of {n} bytes is over the {MAX_BODY} byte limit."}, {}
        body = self.rfile.read(n) if n else None
        return backend.handle(method, self.path, self.headers, body)

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._serve("GET")

    def do_POST(self):  # noqa: N802
        self._serve("POST")

    def do_PUT(self):  # noqa: N802
        self._serve("PUT")

    def do_DELETE(self):  # noqa: N802
        self._serve("DELETE")

    def do_PATCH(self):  # noqa: N802
        self._serve("PATCH")

    def log_message(self, format, *args):  # noqa: A002 - our own one-line log in _serve instead (no headers, no bodies)
        pass


class Server(ThreadingHTTPServer):
    """The backend on a socket; ``backend`` needs only ``handle(method, path, headers, body)`` and ``log``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, backend, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT):
        self.backend = backend
        try:
            super().__init__((host, int(port)), _Handler)
        except OSError as e:
            raise WorkspaceError(f"cannot listen on {host}:{port} ({e.strerror or e}). Is another alnb serve (or "
                                 f"another program) using that port? Choose another with --port.") from None

    def handle_error(self, request, client_address):
        """A client that hangs up mid-request (Label Studio cancelling a /predict, a half-sent request, a closed tab) is
        normal: one plain log line.  Anything else keeps socketserver's traceback, so real errors stand out."""
        err = sys.exc_info()[1]
        if isinstance(err, (ConnectionError, TimeoutError)):  # BrokenPipe, ConnectionReset/Aborted; a read timeout
            host, port = client_address[:2] if isinstance(client_address, tuple) else (client_address, "")
            self.backend.log(f"[alnb serve] client {host}:{port} disconnected before the reply was sent "
                             f"({type(err).__name__}); nothing to do")
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"
