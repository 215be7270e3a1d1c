"""Web benchmark: `web.render` (browser reuse, guarded fetching, extraction, samples) vs a bare Playwright
loop on the same local pages; 1 vs 2 worker processes; crawl pages/s against the local server."""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from operators.web.testserver import DEFAULT_ROOT, TestSiteServer

DEMO_ROOT = DEFAULT_ROOT.parent / "demo_site"
PAGES = ["/index.html", "/boats.html", "/maps.html", "/visit.html"]


def _one_bare(browser, url: str) -> None:
    """The plain Playwright loop body: fresh context, goto, full-page JPEG screenshot, close."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    page.goto(url, wait_until="load")
    page.screenshot(full_page=True, type="jpeg", quality=85)
    ctx.close()


def _side_by_side(urls: list[str], rounds: int) -> tuple[list[float], list[float], int]:
    """Seconds per page for the bare loop and for `web.render` on the same browser, alternating page by
    page so that load from other processes falls on both alike; and the samples ours made."""
    from operators.sample import Sample
    from operators.web.browser import BrowserSession
    from operators.web.render import WebRenderer

    session = BrowserSession()
    session.start()
    op = WebRenderer({"allow_hosts": "127.0.0.1"})
    op.use_session(session)
    _one_bare(session.browser, urls[0])  # warm-up both paths
    op.run(urls[:1])
    bare: list[float] = []
    ours: list[float] = []
    made = 0
    for _ in range(rounds):
        for u in urls:
            t0 = time.perf_counter()
            _one_bare(session.browser, u)
            t1 = time.perf_counter()
            out = op.run([u])
            t2 = time.perf_counter()
            bare.append(t1 - t0)
            ours.append(t2 - t1)
            made += sum(isinstance(o, Sample) for o in out)
    session.close()
    return bare, ours, made


def _ours(urls: list[str]) -> float:
    """Seconds for `web.render` over the URLs with one browser kept for all of them (start-up excluded)."""
    from operators.web.render import WebRenderer

    op = WebRenderer({"allow_hosts": "127.0.0.1"})
    op.setup()
    op._ready = True
    op.run(urls[:1])  # warm-up
    t0 = time.perf_counter()
    op.run(urls)
    dt = time.perf_counter() - t0
    op.teardown()
    return dt


def _worker(urls: list[str]) -> float:
    return _ours(urls)


def _workers(urls: list[str], n: int) -> float:
    """Pages/s of n worker processes, each with its own browser, splitting the URLs."""
    parts = [urls[i::n] for i in range(n)]
    with ProcessPoolExecutor(n, mp_context=get_context("spawn")) as ex:
        times = list(ex.map(_worker, parts))
    return len(urls) / max(times)  # steady state: browser start-up excluded, slowest worker decides


def _crawl_site(root: Path, n: int) -> None:
    for i in range(n):
        links = "".join(f'<li><a href="/p{(i * 7 + k) % n}.html">page {(i * 7 + k) % n}</a></li>' for k in range(1, 6))
        (root / f"p{i}.html").write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Page {i}</title>"
                                         f"</head><body><h1>Page {i}</h1><p>{'Some text. ' * 50}</p>"
                                         f"<ul>{links}</ul></body></html>")
    (root / "robots.txt").write_text("User-agent: *\nDisallow:\n")


def _crawl(n_pages: int) -> dict:
    from operators.web.crawl import WebCrawler

    with tempfile.TemporaryDirectory() as d:
        _crawl_site(Path(d), n_pages)
        with TestSiteServer(d) as srv:
            out = {}
            for conc in (1, 4):
                op = WebCrawler({"allow_hosts": "127.0.0.1", "min_delay_s": 0, "host_concurrency": conc,
                                 "threads": conc, "max_depth": 50, "max_pages": n_pages})
                t0 = time.perf_counter()
                res = op.run([srv.url("/p0.html")])
                dt = time.perf_counter() - t0
                out[f"pages_per_s_concurrency{conc}"] = round(op.stats["pages"] / dt, 1)
                out["pages"] = op.stats["pages"]
                assert len(res) == n_pages
    return out


def run(quick: bool) -> dict:
    rounds = 2 if quick else 3
    repeat = 2 if quick else 5
    with TestSiteServer(DEMO_ROOT) as srv:
        urls = [srv.url(p) for p in PAGES] * repeat
        bare, ours, made = _side_by_side(urls, rounds)
        n = len(urls) * rounds
        bare_rate, ours_rate = n / sum(bare), n / sum(ours)
        # the median of per-page ratios: robust to load bursts from other processes on a shared machine
        ratio = statistics.median(o / b for o, b in zip(ours, bare))
        one = _workers(urls, 1)
        two = _workers(urls, 2)
    return {
        "pages": n,
        "render": {"bare_playwright_pages_per_s": round(bare_rate, 2), "ours_pages_per_s": round(ours_rate, 2),
                   "overhead_pct_total": round(100 * (bare_rate / ours_rate - 1), 1),
                   "overhead_pct_median_per_page": round(100 * (ratio - 1), 1), "samples_made": made,
                   "samples_per_page": round(made / n, 1)},
        "workers": {"1_pages_per_s": round(one, 2), "2_pages_per_s": round(two, 2),
                    "speedup": round(two / one, 2)},
        "crawl": _crawl(60 if quick else 200),
    }
