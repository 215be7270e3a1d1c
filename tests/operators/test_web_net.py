"""URL normalisation, the SSRF guard and HTML decoding (no network beyond 127.0.0.1, no browser)."""

from __future__ import annotations

import ipaddress

import pytest

from operators.web.common import page_key
from operators.web.net import AddressGuard, FetchError, decode_html, normalize_url


def test_normalize_url_canonical_forms():
    assert normalize_url("HTTP://Example.COM:80/a/./b/../c?b=2&a=1#frag") == "http://example.com/a/c?a=1&b=2"
    assert normalize_url("https://example.com:443") == "https://example.com/"
    assert normalize_url("http://example.com:8080/x%7e") == "http://example.com:8080/x~"
    assert normalize_url("../up.html", base="http://h/a/b/page.html") == "http://h/a/up.html"
    assert page_key("http://h/p?b=1&a=2#x") == page_key("HTTP://h/p?a=2&b=1")
    assert page_key("http://h/p").startswith("web-") and len(page_key("http://h/p")) == 4 + 16


@pytest.mark.parametrize("url,reason", [
    ("http://169.254.169.254/latest/meta-data/", "blocked_address"),
    ("http://10.0.0.1/admin", "blocked_address"),
    ("http://192.168.1.1/", "blocked_address"),
    ("http://127.0.0.1:9/", "blocked_address"),
    ("http://[::1]/", "blocked_address"),
    ("http://0.0.0.0/", "blocked_address"),
    ("file:///etc/passwd", "blocked_scheme"),
    ("ftp://example.com/x", "blocked_scheme"),
    ("gopher://127.0.0.1/", "blocked_scheme"),
])
def test_guard_refuses_before_connecting(url, reason):
    with pytest.raises(FetchError) as e:
        AddressGuard().resolve(url)  # resolve() only looks the name up; it never opens a socket
    assert e.value.reason == reason


def test_guard_allowlist_exempts_only_what_it_names():
    g = AddressGuard(("127.0.0.1",))
    assert g.resolve("http://127.0.0.1:8000/x") == ["127.0.0.1"]
    with pytest.raises(FetchError):
        g.resolve("http://10.0.0.1/")
    g = AddressGuard(("10.0.0.0/8",))
    g.check_address("intranet", ipaddress.ip_address("10.1.2.3"))
    with pytest.raises(FetchError, match="metadata"):  # a private-range allowlist does not open metadata
        AddressGuard(("169.254.0.0/16",)).check_address("x", ipaddress.ip_address("169.254.169.254"))
    with pytest.raises(FetchError):  # an IPv4-mapped IPv6 address is the IPv4 address it maps
        AddressGuard().check_address("x", ipaddress.ip_address("::ffff:10.0.0.1"))
    assert AddressGuard(allow_schemes=("file",)).check_scheme("file:///tmp/x") is None


@pytest.mark.parametrize("body,declared,reason", [
    ("Caf\u00e9".encode("latin-1") + b"\xff", "utf-8", "bad_encoding"),
    ("Caf\u00e9".encode("latin-1"), None, "undeclared_encoding"),
    (b"hello", "x-nonsense", "unknown_encoding"),
])
def test_decode_html_rejects_wrong_and_missing_encodings(body, declared, reason):
    with pytest.raises(FetchError) as e:
        decode_html(body, declared)
    assert e.value.reason == reason


def test_decode_html_uses_header_then_meta_then_utf8():
    assert decode_html("Caf\u00e9".encode("latin-1"), "iso-8859-1") == "Caf\u00e9"
    meta = b'<meta charset="windows-1252"><p>' + "na\u00efve \u20ac".encode("cp1252")
    assert decode_html(meta, None).endswith("na\u00efve \u20ac")
    assert decode_html("\ufeffh\u00e9".encode("utf-8"), None) == "h\u00e9"
