"""A local HTTP server on 127.0.0.1 for tests, the demo and the benchmark: static site plus hostile routes.

Serves a directory (`tests/data/site` by default) and dynamic routes for redirects, loops, never-ending
and huge bodies, flaky 503s, bad encodings, SSRF redirects and downloads; it logs every request.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "tests" / "data" / "site"


@dataclass
class RequestLog:
    """What the server saw: (path, start time) per request, and the peak number in flight."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[tuple[str, float]] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0
    flaky: dict[str, int] = field(default_factory=dict)

    def paths(self) -> list[str]:
        with self.lock:
            return [p for p, _ in self.requests]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.peak_in_flight = 0
            self.flaky.clear()


def _html(body: str, title: str = "t") -> bytes:
    return f"<!DOCTYPE html><html><head><title>{title}</title></head><body>{body}</body></html>".encode()


class SiteHandler(SimpleHTTPRequestHandler):
    """Static files plus the dynamic routes listed in `ROUTES` (see their docstrings)."""

    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # keep test output quiet
        log.debug("testserver: " + format, *args)

    def do_GET(self) -> None:
        rl = self.server.reqlog
        # In flight = from arrival until the response starts. Counting until the handler returns
        # would race: the client may read the whole body and send its next request before this
        # thread gets back to decrement, so the peak could exceed the client's real concurrency.
        with rl.lock:
            rl.requests.append((self.path, time.monotonic()))
            rl.in_flight += 1
            rl.peak_in_flight = max(rl.peak_in_flight, rl.in_flight)
        try:
            if self.server.delay_s:
                time.sleep(self.server.delay_s)  # a slow host: lets politeness tests see overlap
        finally:
            with rl.lock:
                rl.in_flight -= 1
        try:
            path = urlsplit(self.path).path
            for prefix, name in ROUTES:
                if path.startswith(prefix):
                    return getattr(self, name)(path[len(prefix):])
            super().do_GET()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send(self, status: int, body: bytes, ctype: str = "text/html; charset=utf-8", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str, status: int = 302) -> None:
        self._send(status, b"", "text/plain", Location=location)

    # --- dynamic routes -----------------------------------------------------------------------
    def r_redirect(self, rest: str) -> None:
        """/redirect/N -> /redirect/N-1 -> ... -> /index.html"""
        n = int(rest or "0")
        self._redirect(f"/redirect/{n - 1}" if n > 0 else "/index.html")

    def r_loop(self, rest: str) -> None:
        """/loop/a <-> /loop/b forever."""
        self._redirect("/loop/b" if rest == "a" else "/loop/a")

    def r_ssrf(self, rest: str) -> None:
        """/ssrf/meta and /ssrf/private redirect to addresses the guard must refuse."""
        target = {"meta": "http://169.254.169.254/latest/meta-data/", "private": "http://10.0.0.1/admin",
                  "file": "file:///etc/passwd"}.get(rest, "http://10.0.0.1/")
        self._redirect(target)

    def r_never(self, rest: str) -> None:
        """A body that never ends: a chunk every 0.1 s until the client gives up or the server stops."""
        self.send_response(200)
        self.send_header("Content-Type", "image/png" if rest == "image" else "text/html; charset=utf-8")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"<!DOCTYPE html><html><body><p>loading")
        while not self.server.stopping.is_set():
            self.wfile.write(b" ")
            self.wfile.flush()
            time.sleep(0.1)
        self.close_connection = True

    def r_huge(self, rest: str) -> None:
        """/huge/<MB>: an HTML page of that many megabytes (default 50), streamed without a length."""
        mb = int(rest or "50")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"<!DOCTYPE html><html><body>")
        line = b"<p>" + b"x" * 1020 + b"</p>"
        for _ in range(mb * 1024):
            if self.server.stopping.is_set():
                break
            self.wfile.write(line)
        self.close_connection = True

    def r_flaky(self, rest: str) -> None:
        """/flaky/<name>: 503 on the first two requests, then a page."""
        rl = self.server.reqlog
        with rl.lock:
            n = rl.flaky[rest] = rl.flaky.get(rest, 0) + 1
        if n <= 2:
            self._send(503, b"busy", "text/plain", Retry_After="0")
        else:
            self._send(200, _html(f"<h1>Flaky {rest}</h1><p>Served on attempt {n}.</p>", "flaky"))

    def r_enc(self, rest: str) -> None:
        """/enc/bad-utf8 (declared UTF-8, invalid bytes), /enc/latin1 (undeclared Latin-1),
        /enc/latin1-declared (correctly declared), /enc/unknown (charset x-nonsense)."""
        text = "<!DOCTYPE html><html><body><p>Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e</p></body></html>"
        if rest == "bad-utf8":
            self._send(200, text.encode("latin-1") + b"\xff\xfe\xfa", "text/html; charset=utf-8")
        elif rest == "latin1":
            self._send(200, text.encode("latin-1"), "text/html")
        elif rest == "latin1-declared":
            self._send(200, text.encode("latin-1"), "text/html; charset=iso-8859-1")
        else:
            self._send(200, text.encode(), "text/html; charset=x-nonsense")

    def r_download(self, rest: str) -> None:
        """/download/file.bin: an attachment."""
        self._send(200, b"\x00" * 2048, "application/octet-stream",
                   Content_Disposition='attachment; filename="file.bin"')

    def r_status(self, rest: str) -> None:
        """/status/<code>: an empty response with that status."""
        self._send(int(rest or "500"), f"status {rest}".encode(), "text/plain")


ROUTES = [("/redirect/", "r_redirect"), ("/loop/", "r_loop"), ("/ssrf/", "r_ssrf"), ("/never/", "r_never"),
          ("/huge/", "r_huge"), ("/flaky/", "r_flaky"), ("/enc/", "r_enc"), ("/download/", "r_download"),
          ("/status/", "r_status")]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    reqlog: RequestLog
    stopping: threading.Event
    delay_s: float = 0.0


class TestSiteServer:
    """`with TestSiteServer() as srv: srv.url("/index.html")` serves the test site on 127.0.0.1."""

    __test__ = False  # not a pytest test class

    def __init__(self, root: str | Path = DEFAULT_ROOT, port: int = 0, delay_s: float = 0.0):
        self.root = Path(root)
        self.httpd = _Server(("127.0.0.1", port), partial(SiteHandler, directory=str(self.root)))
        self.httpd.reqlog = RequestLog()
        self.httpd.stopping = threading.Event()
        self.httpd.delay_s = delay_s
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def log(self) -> RequestLog:
        return self.httpd.reqlog

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> TestSiteServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="testsite", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
