"""`web.crawl`: a polite breadth-first crawler from seed URLs, one seed per input unit.

It obeys robots.txt, spaces and caps requests per host, limits depth, pages and bytes, normalises and
dedups URLs, retries transient errors with backoff, and fetches only through the SSRF guard (net.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

from pydantic import Field

from operators.base import OperatorConfig, Resources, Source, register
from operators.sample import Rejection, Sample
from operators.web.common import StrList, page_key
from operators.web.net import (
    TRANSIENT_STATUS,
    AddressGuard,
    Fetcher,
    FetchError,
    FetchResult,
    decode_html,
    host_of,
    normalize_url,
)

log = logging.getLogger(__name__)

SKIPPED_SCHEMES = ("mailto", "javascript", "tel", "data", "sms", "about")
BLOCK_TAGS = {"p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "br", "section", "article",
              "header", "footer", "table", "ul", "ol", "pre", "blockquote", "title", "td", "th", "figcaption"}


class PageParser(HTMLParser):
    """Links (href of a/area, honouring <base>) and visible text of an HTML page, in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.links: list[tuple[str, bool]] = []  # (href, nofollow)
        self._skip = 0
        self._parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "style", "noscript", "template"):
            self._skip += 1
        elif tag == "base" and a.get("href") and self.base is None:
            self.base = a["href"]
        elif tag in ("a", "area") and a.get("href"):
            self.links.append((a["href"] or "", "nofollow" in (a.get("rel") or "").lower()))
        if tag in BLOCK_TAGS:
            self._parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript", "template") and self._skip:
            self._skip -= 1
        if tag in BLOCK_TAGS:
            self._parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._parts.append(data)

    @property
    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self._parts).split("\n"))
        return "\n".join(line for line in lines if line)


class HostLimiter:
    """Per-host politeness: at most `concurrency` requests in flight and a delay between request starts."""

    def __init__(self, concurrency: int, delay_s: float):
        self.concurrency, self.delay_s = concurrency, delay_s
        self._lock = threading.Lock()
        self._sems: dict[str, threading.BoundedSemaphore] = {}
        self._next: dict[str, float] = {}
        self._delay: dict[str, float] = {}
        self.starts: dict[str, list[float]] = {}  # request start times per host (politeness is testable)

    def delay_for(self, host: str, delay_s: float) -> None:
        """Raise one host's delay (robots.txt Crawl-delay); never lowers the configured one."""
        with self._lock:
            self._delay[host] = max(self.delay_s, delay_s)

    def __call__(self, host: str) -> _Slot:
        return _Slot(self, host)

    def _acquire(self, host: str) -> None:
        with self._lock:
            sem = self._sems.setdefault(host, threading.BoundedSemaphore(self.concurrency))
        sem.acquire()
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next.get(host, 0.0))
            self._next[host] = start + self._delay.get(host, self.delay_s)
            self.starts.setdefault(host, []).append(start)
        if start > now:
            time.sleep(start - now)  # never wakes early, so the request goes out at `start` or later

    def _release(self, host: str) -> None:
        self._sems[host].release()


class _Slot:
    def __init__(self, limiter: HostLimiter, host: str):
        self.limiter, self.host = limiter, host

    def __enter__(self) -> None:
        self.limiter._acquire(self.host)

    def __exit__(self, *exc: object) -> None:
        self.limiter._release(self.host)


@register("web.crawl")
class WebCrawler(Source):
    """Crawls each seed URL breadth-first and emits one `web_page` sample per fetched HTML page.

    The page sample carries the decoded HTML in `meta["html"]` for `web.render`, and its visible text
    as a text-only sample. Every URL that was refused or failed becomes a rejection with its reason.
    """

    version = "1"
    resources = Resources(num_cpus=1, workers=2, batch_size=1)

    class Config(OperatorConfig):
        seeds: StrList = Field(default_factory=list, description="seed URLs (the input units)")
        max_depth: int = Field(2, ge=0)
        max_pages: int = Field(50, ge=1, description="pages fetched per seed")
        max_bytes: int = Field(5_000_000, ge=1024, description="largest page body")
        max_total_bytes: int = Field(100_000_000, ge=1024, description="bytes fetched per seed")
        max_redirects: int = Field(5, ge=0)
        timeout_s: float = Field(10.0, gt=0, description="total time for one fetch")
        retries: int = Field(2, ge=0, description="retries of transient errors (5xx, 429, timeouts)")
        backoff_s: float = Field(0.5, ge=0, description="first retry wait, doubled each time")
        min_delay_s: float = Field(0.5, ge=0, description="per-host wait between request starts")
        host_concurrency: int = Field(2, ge=1)
        threads: int = Field(4, ge=1)
        allow_domains: StrList = Field(default_factory=list, description="hosts (and subdomains) to follow; "
                                       "empty: the seeds' hosts")
        deny_domains: StrList = Field(default_factory=list)
        allow_hosts: StrList = Field(default_factory=list, description="hosts/IPs/CIDRs exempt from the "
                                     "private-address refusal (e.g. 127.0.0.1)")
        allow_schemes: StrList = Field(default_factory=list, description="schemes beyond http/https")
        content_types: StrList = Field(default_factory=lambda: ["text/html", "application/xhtml+xml"])
        obey_robots: bool = True
        user_agent: str = "dsvl-data-crawler/0.1"

    def __init__(self, config=None):
        super().__init__(config)
        c = self.config
        self.guard = AddressGuard(tuple(c.allow_hosts), tuple(c.allow_schemes))
        self.fetcher = Fetcher(self.guard, c.timeout_s, c.max_bytes, c.max_redirects, c.user_agent)
        self.stats: Counter[str] = Counter()

    def setup(self) -> None:
        # Locks and caches are per worker, made here so that the operator itself stays picklable.
        c = self.config
        self._robots: dict[str, RobotFileParser | None] = {}
        self._robots_lock = threading.Lock()
        self.limiter = HostLimiter(c.host_concurrency, c.min_delay_s)

    def list_inputs(self) -> list[str]:
        seeds = [normalize_url(s) for s in self.config.seeds]
        if not seeds:
            raise ValueError("web.crawl: no seeds given (set `seeds`)")
        return list(dict.fromkeys(seeds))

    # --- politeness -------------------------------------------------------------------------------
    def _in_scope(self, url: str, seed_hosts: set[str]) -> bool:
        host = host_of(url)
        allow = self.config.allow_domains or sorted(seed_hosts)
        match = lambda d: host == d.lower() or host.endswith("." + d.lower())
        return any(match(d) for d in allow) and not any(match(d) for d in self.config.deny_domains)

    def _robots_for(self, url: str) -> RobotFileParser | None:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._robots_lock:
            if origin in self._robots:
                return self._robots[origin]
        rp = RobotFileParser(origin + "/robots.txt")
        try:
            res = self._get(origin + "/robots.txt", accept="text/plain")
            if res.status >= 500:
                rp.disallow_all = True  # RFC 9309: an unreachable robots.txt means "crawl nothing"
            elif res.status >= 400:
                rp.allow_all = True
            else:
                rp.parse(res.body.decode("utf-8", "replace").splitlines())
        except FetchError as e:
            if e.reason in ("blocked_address", "blocked_scheme"):
                raise
            rp.disallow_all = True
        delay = rp.crawl_delay(self.config.user_agent)
        if delay:
            self.limiter.delay_for(host_of(url), float(delay))
        with self._robots_lock:
            self._robots[origin] = rp
        return rp

    def _get(self, url: str, accept: str = "text/html,*/*;q=0.5") -> FetchResult:
        """One polite fetch with retries and exponential backoff on transient failures."""
        attempt = 0
        while True:
            try:
                with self.limiter(host_of(url)):
                    res = self.fetcher.fetch(url, accept=accept)
                if res.status not in TRANSIENT_STATUS or attempt >= self.config.retries:
                    return res
            except FetchError as e:
                if not e.transient or attempt >= self.config.retries:
                    raise
            attempt += 1
            self.stats["retries"] += 1
            time.sleep(self.config.backoff_s * 2 ** (attempt - 1))

    # --- one page ---------------------------------------------------------------------------------
    def _fetch_page(self, url: str) -> FetchResult | FetchError:
        try:
            if self.config.obey_robots:
                rp = self._robots_for(url)
                if rp is not None and not rp.can_fetch(self.config.user_agent, url):
                    return FetchError("robots_disallowed", url)
            res = self._get(url)
            for hop in res.redirects:  # each hop was checked by the guard; re-check the scope too
                if self.config.obey_robots and not self._robots_for(hop).can_fetch(self.config.user_agent, hop):
                    return FetchError("robots_disallowed", f"redirect target {hop}")
            return res
        except FetchError as e:
            return e

    def read(self, input: str) -> Iterable[Sample | Rejection]:
        seed = normalize_url(input)
        seed_hosts = {host_of(seed)}
        if not self._in_scope(seed, seed_hosts):
            yield self._reject(input, seed, "denied_domain", "the seed is outside allow_domains/deny_domains")
            return
        frontier: list[str] = [seed]
        seen: set[str] = {seed}
        emitted: set[str] = set()  # final URLs already emitted (redirect aliases of one page)
        depth, pages, total_bytes = 0, 0, 0
        with ThreadPoolExecutor(self.config.threads, thread_name_prefix="crawl") as pool:
            while frontier and depth <= self.config.max_depth:
                batch = frontier[: self.config.max_pages - pages]
                self.stats["frontier_left"] += len(frontier) - len(batch)
                frontier = []
                for url, res in zip(batch, pool.map(self._fetch_page, batch)):
                    if isinstance(res, FetchError):
                        yield self._reject(input, url, res.reason, res.detail)
                        continue
                    pages += 1
                    total_bytes += len(res.body)
                    out, links = self._page(input, url, res, depth)
                    if isinstance(out, Sample):
                        if out.key in emitted:
                            yield self._reject(input, url, "duplicate_page", f"same page as {out.meta['url']}")
                            continue
                        emitted.add(out.key)
                    yield out
                    for link in links if depth < self.config.max_depth else []:
                        n = self._admit(input, link, seed_hosts, seen)
                        if isinstance(n, Rejection):
                            yield n
                        elif n:
                            frontier.append(n)
                    if total_bytes >= self.config.max_total_bytes:
                        self.stats["stopped_total_bytes"] += 1
                        frontier = []
                        break
                if pages >= self.config.max_pages:
                    self.stats["frontier_left"] += len(frontier)
                    break
                depth += 1

    def _admit(self, input: str, link: str, seed_hosts: set[str], seen: set[str]) -> str | Rejection | None:
        scheme = urlsplit(link).scheme.lower()
        if scheme in SKIPPED_SCHEMES:
            self.stats["skipped_nonweb_link"] += 1
            return None
        try:
            self.guard.check_scheme(link)
        except FetchError as e:
            if link in seen:
                return None
            seen.add(link)
            return self._reject(input, link, e.reason, e.detail)
        n = normalize_url(link)
        if n in seen:
            self.stats["duplicate_link"] += 1
            return None
        seen.add(n)
        if not self._in_scope(n, seed_hosts):
            self.stats["out_of_scope_link"] += 1
            return None
        return n

    def _page(self, input: str, url: str, res: FetchResult, depth: int) -> tuple[Sample | Rejection, list[str]]:
        final = normalize_url(res.final_url if not res.redirects else res.redirects[-1])
        if res.status != 200:
            return self._reject(input, url, f"http_{res.status}", final), []
        if res.content_type not in self.config.content_types:
            return self._reject(input, url, "not_html", f"content-type {res.content_type or '(none)'}"), []
        try:
            html = decode_html(res.body, res.charset)
        except FetchError as e:
            return self._reject(input, url, e.reason, e.detail), []
        parser = PageParser()
        parser.feed(html)
        parser.close()
        base = urljoin(final, parser.base) if parser.base else final
        links = [urljoin(base, h) for h, nofollow in parser.links if not nofollow]
        self.stats["pages"] += 1
        self.stats["bytes"] += len(res.body)
        sample = Sample(
            key=page_key(final), input=input, source="web", task="web_page", category="text_only", stage=[2],
            text=parser.text,
            provenance={"input": input, "url": final, "license": "unknown"},
            meta={"url": final, "requested_url": url, "html": html, "depth": depth, "status": res.status,
                  "content_type": res.content_type, "bytes": len(res.body), "redirects": res.redirects},
        )
        return sample, links

    def _reject(self, input: str, url: str, reason: str, detail: str) -> Rejection:
        self.stats[f"rejected_{reason}"] += 1
        if reason in ("blocked_address", "blocked_scheme"):
            self.stats["ssrf_refused"] += 1
            log.warning("web.crawl refused %s: %s", url, detail)
        return Rejection(input, self.name, reason, f"{url}: {detail}"[:1000], page_key(url) if "://" in url else "")
