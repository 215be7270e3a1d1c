"""Safe HTTP fetching for the web operators: URL normalisation, the SSRF guard and a capped fetcher.

Every connection goes to an address that was resolved and checked first (private, loopback, link-local
and metadata ranges are refused unless allowlisted); redirects are followed by hand and re-checked per hop.
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import socket
import ssl
import time
from dataclasses import dataclass, field
from email.message import Message
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

log = logging.getLogger(__name__)

# Cloud metadata endpoints that must never be reached even where private ranges are allowlisted.
METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
                      ipaddress.ip_address("100.100.100.200")}
WEB_SCHEMES = ("http", "https")
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


class FetchError(Exception):
    """A URL that could not be fetched safely; `reason` is the ledger reason (snake_case)."""

    def __init__(self, reason: str, detail: str = "", transient: bool = False):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.transient = transient


def normalize_url(url: str, base: str | None = None) -> str:
    """Canonical form for dedup and keys: lower-case scheme and host, no default port, no fragment,
    sorted query, resolved dot segments, percent-encoding normalised, '/' for an empty path."""
    if base is not None:
        url = urljoin(base, url)
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    path = parts.path or "/"
    segs: list[str] = []
    for seg in path.split("/"):
        if seg == "..":
            if len(segs) > 1:
                segs.pop()
        elif seg != ".":
            segs.append(seg)
    path = "/".join(segs) or "/"
    if not path.startswith("/"):
        path = "/" + path
    path = quote(unquote(path), safe="/:@!$&'()*+,;=-._~")
    query = urlencode(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return urlunsplit((scheme, host, path, query, ""))


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower().rstrip(".")


@dataclass(frozen=True)
class AddressGuard:
    """Decides which schemes, hosts and resolved addresses may be contacted.

    `allow_hosts` lists host names, IP addresses or CIDR ranges exempt from the private-address rule
    (tests and demos allowlist 127.0.0.1); `allow_schemes` extends http/https (e.g. "file").
    """

    allow_hosts: tuple[str, ...] = ()
    allow_schemes: tuple[str, ...] = ()

    def _host_allowlisted(self, host: str, ip: ipaddress._BaseAddress | None) -> bool:
        for entry in self.allow_hosts:
            entry = entry.strip().lower()
            if not entry:
                continue
            if entry == host:
                return True
            if ip is not None:
                try:
                    if ip in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    pass
        return False

    def check_scheme(self, url: str) -> None:
        scheme = urlsplit(url).scheme.lower()
        if scheme not in WEB_SCHEMES and scheme not in self.allow_schemes:
            raise FetchError("blocked_scheme", f"{scheme or '(none)'}: {url[:200]}")

    def resolve(self, url: str) -> list[str]:
        """Resolve the URL's host and check every address; returns the addresses to connect to."""
        self.check_scheme(url)
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            raise FetchError("bad_url", url[:200])
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as e:
            raise FetchError("dns_error", f"{host}: {e}") from None
        addrs = []
        for info in infos:
            ip = ipaddress.ip_address(info[4][0].split("%")[0])
            self.check_address(host, ip)
            addrs.append(str(ip))
        if not addrs:
            raise FetchError("dns_error", f"{host}: no address")
        return sorted(set(addrs), key=addrs.index)

    def check_address(self, host: str, ip: ipaddress._BaseAddress) -> None:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if ip in METADATA_ADDRESSES and not self._host_allowlisted(host, None):
            raise FetchError("blocked_address", f"{host} -> {ip} (cloud metadata)")
        if (not ip.is_global or ip.is_multicast) and not self._host_allowlisted(host, ip):
            kind = ("loopback" if ip.is_loopback else "link-local" if ip.is_link_local
                    else "private" if ip.is_private else "reserved")
            raise FetchError("blocked_address", f"{host} -> {ip} ({kind})")

    def host_allowed(self, url: str) -> bool:
        """True when the URL's host is named in the allowlist (render's sub-resource rule)."""
        host = host_of(url)
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            ip = None
        return self._host_allowlisted(host, ip)


@dataclass
class FetchResult:
    url: str  # the URL asked for
    final_url: str  # after redirects
    status: int
    headers: dict[str, str]
    body: bytes
    redirects: list[str] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        msg = Message()
        msg["content-type"] = self.headers.get("content-type", "")
        cs = msg.get_param("charset")
        return str(cs).strip().lower() if cs else None


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a pre-checked address while verifying the certificate for the real host name."""

    def __init__(self, ip: str, port: int, server_name: str, timeout: float):
        super().__init__(ip, port, timeout=timeout, context=ssl.create_default_context())
        self._server_name = server_name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._server_name)


@dataclass
class Fetcher:
    """GET with a size cap, a total deadline, manual redirects (hop limit, loop detection) and the guard."""

    guard: AddressGuard = field(default_factory=AddressGuard)
    timeout_s: float = 10.0
    max_bytes: int = 5_000_000
    max_redirects: int = 5
    user_agent: str = "dsvl-data-crawler/0.1 (+https://github.com/dsvl-data)"

    def fetch(self, url: str, deadline: float | None = None, accept: str = "*/*") -> FetchResult:
        deadline = deadline or (time.monotonic() + self.timeout_s)
        current, seen, hops = url, {normalize_url(url)}, []
        while True:
            res = self._get_once(current, deadline, accept)
            if res.status in (301, 302, 303, 307, 308) and "location" in res.headers:
                nxt = urljoin(current, res.headers["location"])
                hops.append(nxt)
                n = normalize_url(nxt) if urlsplit(nxt).scheme in WEB_SCHEMES else nxt
                if n in seen:
                    raise FetchError("redirect_loop", " -> ".join([url, *hops])[:500])
                if len(hops) > self.max_redirects:
                    raise FetchError("too_many_redirects", f"{len(hops)} hops from {url}"[:500])
                seen.add(n)
                current = nxt
                continue
            res.url, res.redirects = url, hops
            return res

    def _get_once(self, url: str, deadline: float, accept: str) -> FetchResult:
        addrs = self.guard.resolve(url)  # raises before any connection is made
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError("fetch_timeout", url[:200], transient=True)
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = _PinnedHTTPS(addrs[0], port, host, remaining)
        else:
            conn = http.client.HTTPConnection(addrs[0], port, timeout=remaining)
        host_header = host if parts.port is None else f"{host}:{port}"
        try:
            conn.request("GET", path, headers={"Host": host_header, "User-Agent": self.user_agent,
                                               "Accept": accept, "Accept-Encoding": "identity",
                                               "Connection": "close"})
            resp = conn.getresponse()
            headers = {k.lower(): v for k, v in resp.getheaders()}
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > self.max_bytes:
                raise FetchError("page_too_large", f"content-length {length} > {self.max_bytes}")
            chunks, total = [], 0
            while True:
                if time.monotonic() > deadline:
                    raise FetchError("fetch_timeout", f"body not complete in time: {url[:200]}", transient=True)
                chunk = resp.read1(65536)
                if not chunk:
                    break
                total += len(chunk)
                if total > self.max_bytes:
                    raise FetchError("page_too_large", f"more than {self.max_bytes} bytes: {url[:200]}")
                chunks.append(chunk)
            return FetchResult(url, url, resp.status, headers, b"".join(chunks))
        except TimeoutError:
            raise FetchError("fetch_timeout", url[:200], transient=True) from None
        except ssl.SSLError as e:
            raise FetchError("tls_error", f"{url[:200]}: {e}") from None
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            raise FetchError("connection_error", f"{url[:200]}: {type(e).__name__} {e}", transient=True) from None
        finally:
            conn.close()


def decode_html(body: bytes, declared: str | None) -> str:
    """Text of an HTML body: the HTTP charset, else a <meta charset>, else UTF-8 when it decodes.

    A declared charset that does not decode is `bad_encoding`, an unknown name `unknown_encoding`,
    and bytes that are not UTF-8 with nothing declared `undeclared_encoding`.
    """
    import codecs
    import re

    if not declared:
        m = re.search(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9_\-:.]+)", body[:4096], re.IGNORECASE)
        if m:
            declared = m.group(1).decode("ascii", "replace").lower()
    if declared:
        try:
            codec = codecs.lookup(declared).name
        except LookupError:
            raise FetchError("unknown_encoding", f"charset {declared!r}") from None
        try:
            return body.decode(codec)
        except UnicodeDecodeError as e:
            raise FetchError("bad_encoding", f"not valid {declared}: {e}") from None
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FetchError("undeclared_encoding", f"no charset declared and not UTF-8: {e}") from None
