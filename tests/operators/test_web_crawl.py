"""`web.crawl` against the local test site: politeness, limits, dedup, retries, SSRF refusals, bad input."""

from __future__ import annotations

import itertools

import pytest

from operators.base import get_operator
from operators.sample import Rejection, Sample
from operators.web.crawl import WebCrawler
from operators.web.testserver import TestSiteServer


@pytest.fixture(scope="module")
def site():
    with TestSiteServer() as srv:
        yield srv


def crawl(site, seed: str = "/index.html", **cfg):
    cfg = {"allow_hosts": "127.0.0.1", "min_delay_s": 0.0, "backoff_s": 0.01, "timeout_s": 3, **cfg}
    op = WebCrawler(cfg)
    site.log.clear()
    out = op.run([site.url(seed)])
    pages = [o for o in out if isinstance(o, Sample)]
    rejects = [o for o in out if isinstance(o, Rejection)]
    return op, pages, rejects


def paths(samples):
    return sorted(s.meta["url"].split(str(s.meta["url"]).split("/")[2], 1)[1] for s in samples)


def test_crawl_site_pages_dedup_and_rejections(site):
    op, pages, rejects = crawl(site, max_depth=2)
    assert paths(pages) == ["/about.html", "/form.html", "/gallery.html", "/index.html", "/long.html",
                            "/table.html", "/table.html?a=1&b=2"]
    assert len({p.key for p in pages}) == len(pages)
    home = next(p for p in pages if p.meta["url"].endswith("/index.html"))
    assert home.task == "web_page" and home.meta["depth"] == 0 and "Harbour Town Museum" in home.text
    assert "<h1>Harbour Town Museum</h1>" in home.meta["html"]
    reasons = sorted(r.reason for r in rejects)
    # robots.txt, a broken link, the redirect alias of index.html, the SSRF redirect and the file:// link
    assert reasons == ["blocked_address", "blocked_scheme", "duplicate_page", "http_404", "robots_disallowed"]
    assert op.stats["ssrf_refused"] == 2
    assert "/private/secret.html" not in site.log.paths()  # robots: never requested
    assert site.log.paths().count("/robots.txt") == 1
    # the two spellings of table.html?a=1&b=2 (query order, fragment) are fetched once
    assert site.log.paths().count("/table.html?a=1&b=2") == 1
    assert op.stats["skipped_nonweb_link"] >= 2  # mailto:, javascript:


def test_crawl_is_deterministic(site):
    _, a, ra = crawl(site, max_depth=1, threads=4)
    _, b, rb = crawl(site, max_depth=1, threads=1)
    assert [s.key for s in a] == [s.key for s in b]
    assert [(r.reason, r.key) for r in ra] == [(r.reason, r.key) for r in rb]


def test_depth_pages_and_byte_limits(site):
    _, pages, _ = crawl(site, max_depth=0)
    assert paths(pages) == ["/index.html"]
    op, pages, _ = crawl(site, max_depth=3, max_pages=3)
    assert len(pages) == 3 and op.stats["frontier_left"] > 0
    op, pages, _ = crawl(site, max_depth=3, max_total_bytes=2048)
    sizes = [p.meta["bytes"] for p in pages]
    assert op.stats["stopped_total_bytes"] == 1 and sum(sizes[:-1]) < 2048 <= sum(sizes) and len(pages) < 7


def test_per_host_rate_limit_and_concurrency():
    with TestSiteServer(delay_s=0.15) as slow:
        op = WebCrawler({"allow_hosts": "127.0.0.1", "min_delay_s": 0.1, "host_concurrency": 2, "threads": 6,
                         "max_depth": 1, "obey_robots": False})
        out = op.run([slow.url("/index.html")])
        times = sorted(op.limiter.starts["127.0.0.1"])
        assert sum(isinstance(o, Sample) for o in out) >= 6
        assert slow.log.peak_in_flight == 2  # six threads, but never more than two requests at the host
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(times) >= 8 and min(gaps) >= 0.099  # page fetches start min_delay_s apart


def test_robots_crawl_delay_is_respected(tmp_path):
    (tmp_path / "robots.txt").write_text("User-agent: *\nCrawl-delay: 1\n")
    (tmp_path / "a.html").write_text('<html><body><a href="/b.html">b</a></body></html>')
    (tmp_path / "b.html").write_text("<html><body><p>b</p></body></html>")
    with TestSiteServer(tmp_path) as srv:
        op = WebCrawler({"allow_hosts": "127.0.0.1", "min_delay_s": 0.0})
        out = op.run([srv.url("/a.html")])
        t = [t for _, t in srv.log.requests]
    assert sum(isinstance(o, Sample) for o in out) == 2
    assert t[2] - t[1] >= 0.95  # robotparser takes whole seconds only


def test_retries_with_backoff_then_success_or_rejection(site):
    op, pages, _ = crawl(site, seed="/flaky/a", max_depth=0, retries=2, obey_robots=False)
    assert len(pages) == 1 and op.stats["retries"] == 2 and "attempt 3" in pages[0].text
    op, pages, rejects = crawl(site, seed="/flaky/b", max_depth=0, retries=1, obey_robots=False)
    assert not pages and [r.reason for r in rejects] == ["http_503"]


def test_allow_and_deny_lists(site):
    _, pages, rejects = crawl(site, max_depth=1, deny_domains="127.0.0.1")
    assert pages == [] and [r.reason for r in rejects] == ["denied_domain"]
    _, pages, rejects = crawl(site, max_depth=1, allow_domains="example.org")
    assert pages == [] and [r.reason for r in rejects] == ["denied_domain"]
    op, pages, _ = crawl(site, max_depth=1, allow_domains="example.org,127.0.0.1")
    assert len(pages) == 7 and op.stats["out_of_scope_link"] == 0


@pytest.mark.parametrize("path,reason", [
    ("/never/", "fetch_timeout"),
    ("/huge/50", "page_too_large"),
    ("/loop/a", "redirect_loop"),
    ("/redirect/9", "too_many_redirects"),
    ("/enc/bad-utf8", "bad_encoding"),
    ("/enc/latin1", "undeclared_encoding"),
    ("/enc/unknown", "unknown_encoding"),
    ("/download/file.bin", "not_html"),
    ("/ssrf/meta", "blocked_address"),
    ("/ssrf/private", "blocked_address"),
    ("/ssrf/file", "blocked_scheme"),
    ("/status/500", "http_500"),
])
def test_bad_input_is_a_rejection(site, path, reason):
    op, pages, rejects = crawl(site, seed=path, max_depth=0, timeout_s=1.0, retries=0, obey_robots=False)
    assert pages == [] and [r.reason for r in rejects] == [reason]
    assert rejects[0].operator == "web.crawl" and rejects[0].key.startswith("web-")
    if reason.startswith("blocked_"):
        assert op.stats["ssrf_refused"] == 1


def test_correct_latin1_page_is_accepted(site):
    _, pages, _ = crawl(site, seed="/enc/latin1-declared", max_depth=0, obey_robots=False)
    assert pages[0].text.endswith("Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e")


def test_private_addresses_refused_without_allowlist(site):
    site.log.clear()
    op = get_operator("web.crawl")({"min_delay_s": 0})
    out = op.run([site.url("/index.html")])
    assert [o.reason for o in out] == ["blocked_address"] and "loopback" in out[0].detail
    assert site.log.paths() == []  # refused before connecting: not even robots.txt was asked for


def test_config_accepts_comma_separated_lists():
    op = WebCrawler({"seeds": "http://a.example/, http://b.example/x", "allow_hosts": "127.0.0.1,10.0.0.0/8"})
    assert op.list_inputs() == ["http://a.example/", "http://b.example/x"]
    with pytest.raises(ValueError, match="max_depht"):
        WebCrawler.parse_config({"max_depht": 2})
