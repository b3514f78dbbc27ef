"""Loopback servers for the download tests, imported by the test modules (fixtures included):
a file server whose routes misbehave on purpose (throttled, cut mid-body, Range ignored or
answered wrongly, 503 with Retry-After, 404), a raw server that sends any bytes it is given
(for hostile answers), a forwarding proxy (absolute-form GET and CONNECT), and a self-signed
TLS certificate.

Everything listens on 127.0.0.1 only, and the proxy refuses to forward anywhere else.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import select
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

import pytest


@dataclass
class Route:
    """What the server does for one path.

    mode: ``ok`` (honours Range), ``norange`` (always 200 with the whole body), ``badrange``
    (answers a Range with a 206 that starts at 0), ``drop`` (the first ``drops`` requests send
    half the body then close), ``flaky`` (the first ``failures`` requests get ``status`` with
    ``Retry-After: retry_after``), ``status`` (always ``status``).
    rate: bytes per second per connection (None: as fast as possible).
    """

    body: bytes = b""
    mode: str = "ok"
    rate: Optional[float] = None
    status: int = 503
    failures: int = 1
    drops: int = 1
    retry_after: Optional[str] = "1"
    seen: int = 0


@dataclass
class Hit:
    """One request the server answered: times are ``time.monotonic()``."""

    path: str
    range: Optional[str]
    status: int
    start: float
    end: float = 0.0
    sent: int = 0
    authorization: Optional[str] = None


@dataclass
class LoopServer:
    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str, **kw: Any) -> str:
        self.routes[path] = Route(**kw)
        return self.url + path

    def finished(self, timeout: float = 10.0) -> list[Hit]:
        """The hits, once every handler has returned (the client may finish reading first)."""
        deadline = time.monotonic() + timeout
        while any(h.end == 0.0 for h in self.hits) and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.hits)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send_body(
        self, body: bytes, rate: Optional[float], hit: Hit, limit: Optional[int] = None
    ) -> None:
        chunk = 32 * 1024
        started = time.monotonic()
        end = len(body) if limit is None else limit
        pos = 0
        while pos < end:
            piece = body[pos : min(pos + chunk, end)]
            self.wfile.write(piece)
            pos += len(piece)
            hit.sent += len(piece)
            if rate:
                ahead = pos / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        self.wfile.flush()

    def do_GET(self) -> None:
        loop: LoopServer = self.server.loop
        route = loop.routes.get(self.path)
        hit = Hit(
            self.path,
            self.headers.get("Range"),
            0,
            time.monotonic(),
            authorization=self.headers.get("Authorization"),
        )
        with loop.lock:
            loop.hits.append(hit)
            if route is not None:
                route.seen += 1
        try:
            self._answer(route, hit)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            hit.end = time.monotonic()

    def _answer(self, route: Optional[Route], hit: Hit) -> None:
        if route is None:
            hit.status = 404
            self.send_error(404, "Not Found")
            return
        body = route.body
        if route.mode == "status" or (route.mode == "flaky" and route.seen <= route.failures):
            hit.status = route.status
            self.send_response(route.status)
            if route.retry_after is not None:
                self.send_header("Retry-After", route.retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        wanted = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d+)-", wanted or "")
        if m and route.mode in ("ok", "drop", "flaky", "badrange"):
            start = 0 if route.mode == "badrange" else int(m.group(1))
            if start >= len(body):
                hit.status = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            hit.status = 206
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self._send_body(body[start:], route.rate, hit)
            return
        hit.status = 200
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if route.mode == "drop" and route.seen <= route.drops:
            self._send_body(body, route.rate, hit, limit=len(body) // 2)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send_body(body, route.rate, hit)


def start_loop_server(
    tls: Optional[ssl.SSLContext] = None,
) -> tuple[LoopServer, ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    scheme = "https" if tls else "http"
    loop = LoopServer(f"{scheme}://127.0.0.1:{httpd.server_address[1]}")
    httpd.loop = loop  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return loop, httpd


@pytest.fixture(name="server")
def server_fixture() -> Iterator[LoopServer]:
    """A misbehaving file server on 127.0.0.1 (see :class:`Route`)."""
    loop, httpd = start_loop_server()
    yield loop
    httpd.shutdown()
    httpd.server_close()


# ---- a server that sends exactly the bytes it is given ------------------------------------


@dataclass
class RawServer:
    """Answers every connection with ``answer`` verbatim (status line, headers and body as
    given, well-formed or not), then closes it; ``requests`` holds each request's head."""

    url: str
    answer: bytes = b""
    requests: list[bytes] = field(default_factory=list)


class _RawHandler(socketserver.BaseRequestHandler):
    server: Any

    def handle(self) -> None:
        raw: RawServer = self.server.raw
        sock: socket.socket = self.request
        sock.settimeout(5)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < 65536:
                data = sock.recv(65536)
                if not data:
                    break
                head += data
            raw.requests.append(head)
            sock.sendall(raw.answer)
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


@pytest.fixture(name="raw_server")
def raw_server_fixture() -> Iterator[RawServer]:
    """A :class:`RawServer` on 127.0.0.1."""
    httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _RawHandler)
    httpd.daemon_threads = True
    raw = RawServer(f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.raw = raw  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield raw
    httpd.shutdown()
    httpd.server_close()


# ---- a forwarding proxy -------------------------------------------------------------------


@dataclass
class Proxy:
    url: str
    requests: list[str] = field(default_factory=list)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _allowed(self, host: str) -> bool:
        return host in ("127.0.0.1", "localhost")

    def do_CONNECT(self) -> None:
        host, _, port = self.path.rpartition(":")
        self.server.proxy.requests.append(f"CONNECT {self.path}")
        if not self._allowed(host):
            self.send_error(403, "only loopback")
            return
        upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        sockets = [self.connection, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 30)
                if not readable:
                    break
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    (upstream if s is self.connection else self.connection).sendall(data)
        except OSError:
            pass
        finally:
            upstream.close()
            self.close_connection = True

    def do_GET(self) -> None:
        from urllib.parse import urlsplit

        self.server.proxy.requests.append(f"GET {self.path}")
        parts = urlsplit(self.path)
        if not parts.hostname or not self._allowed(parts.hostname):
            self.send_error(403, "only loopback")
            return
        upstream = socket.create_connection(("127.0.0.1", parts.port or 80), timeout=30)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        head = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
        for k, v in self.headers.items():
            if k.lower() not in ("host", "connection", "proxy-connection", "keep-alive"):
                head.append(f"{k}: {v}")
        upstream.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            while data := upstream.recv(65536):
                self.wfile.write(data)
        finally:
            upstream.close()
            self.close_connection = True


@pytest.fixture(name="proxy")
def proxy_fixture() -> Iterator[Proxy]:
    """A forwarding proxy on 127.0.0.1 that only forwards to 127.0.0.1."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
    httpd.daemon_threads = True
    p = Proxy(f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.proxy = p  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield p
    httpd.shutdown()
    httpd.server_close()


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for IP 127.0.0.1 and its key, as PEM files ``(cert, key)``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pybundle test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(name="tls_server")
def tls_server_fixture(tmp_path: Path) -> Iterator[tuple[LoopServer, Path]]:
    """An https :class:`LoopServer` on 127.0.0.1 and the path of its (self-signed) CA file."""
    cert, key = self_signed_cert(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    loop, httpd = start_loop_server(ctx)
    yield loop, cert
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True, name="no_proxy_from_outside")
def no_proxy_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start without proxy or CA variables from the environment; each sets its own."""
    for var in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "GITHUB_TOKEN",
    ):
        monkeypatch.delenv(var, raising=False)
