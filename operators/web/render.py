"""`web.render`: render pages in Chromium and emit screenshot, web-code, grounding, interleaved and caption
samples. A Source over URLs (`run-op web.render URL...`) and a transform over `web.crawl` page samples.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import Literal

from pydantic import Field, field_validator

from operators.base import OperatorConfig, Reject, Resources, Source, register
from operators.sample import Rejection, Sample
from operators.web.browser import (
    VIEWPORTS,
    BrowserSession,
    PageRenderer,
    RenderedPage,
    RenderError,
    RenderOptions,
    Resolver,
)
from operators.web.common import StrList, page_key
from operators.web.net import (
    AddressGuard,
    Fetcher,
    FetchError,
    FetchResult,
    decode_html,
    host_of,
    normalize_url,
)
from operators.web.samples import SampleOptions, build_samples

log = logging.getLogger(__name__)

SAMPLE_KINDS = ("code", "ocr", "grounding", "summary", "widgets", "interleaved", "alt")


class RenderConfig(OperatorConfig):
    """Rendering and sample options shared by `web.render` and `web.warc`."""

    viewport: Literal["desktop", "laptop", "mobile"] = "desktop"
    device_scale: float | None = Field(None, gt=0, le=4, description="override the preset's device scale")
    javascript: bool = True
    wait_until: Literal["load", "domcontentloaded", "networkidle"] = "load"
    idle_ms: int = Field(0, ge=0, description="extra wait for network idle after `wait_until` (soft)")
    timeout_s: float = Field(15.0, gt=0, description="budget for one page")
    max_height: int = Field(4000, ge=100, description="CSS pixels of the page captured at most")
    image_format: Literal["jpeg", "png"] = "jpeg"
    jpeg_quality: int = Field(85, ge=10, le=100)
    reject_dialogs: bool = True
    reject_popups: bool = True
    samples: StrList = Field(default_factory=lambda: list(SAMPLE_KINDS), description=f"of {SAMPLE_KINDS}")
    max_code_chars: int = Field(30000, ge=100)
    max_grounding: int = Field(4, ge=1)
    max_widgets: int = Field(4, ge=1)
    min_caption_side: int = Field(64, ge=1)

    @field_validator("samples")
    @classmethod
    def _known_kinds(cls, v: list[str]) -> list[str]:
        bad = sorted(set(v) - set(SAMPLE_KINDS))
        if bad:
            raise ValueError(f"unknown sample kinds {bad}; allowed: {', '.join(SAMPLE_KINDS)}")
        return v

    def render_options(self) -> RenderOptions:
        return RenderOptions(self.viewport, self.device_scale, self.javascript, self.wait_until, self.idle_ms,
                             self.timeout_s, self.max_height, self.image_format, self.jpeg_quality,
                             self.reject_dialogs, self.reject_popups)

    def sample_options(self) -> SampleOptions:
        return SampleOptions(kinds=tuple(self.samples), max_code_chars=self.max_code_chars,
                             max_grounding=self.max_grounding, max_widgets=self.max_widgets,
                             min_caption_side=self.min_caption_side)


class RenderingOperator(Source):
    """Base of the operators that hold one Chromium per worker and turn rendered pages into samples."""

    resources = Resources(num_cpus=1, actor=True, workers=1, batch_size=4)

    def __init__(self, config=None):
        super().__init__(config)
        self.renderer: PageRenderer | None = None
        self.stats: Counter[str] = Counter()

    def setup(self) -> None:
        assert self.config.viewport in VIEWPORTS
        self.renderer = PageRenderer(self.config.render_options())
        self.renderer.start()

    def use_session(self, session: BrowserSession) -> None:
        """Render in an already running browser (tests and benchmarks share one); no setup() needed."""
        self.renderer = PageRenderer(self.config.render_options(), session)
        self._ready = True

    def teardown(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None
        self._ready = False

    def render_samples(self, input: str, url: str, html: bytes, resolve: Resolver) -> list[Sample | Rejection]:
        self.ensure_setup()
        assert self.renderer is not None
        try:
            page: RenderedPage = self.renderer.render(url, html, resolve)
        except RenderError as e:
            self.stats[f"rejected_{e.reason}"] += 1
            raise Reject(e.reason, f"{url}: {e.detail}", page_key(url)) from None
        self.stats["pages"] += 1
        self.stats["blocked_requests"] += len(page.blocked)
        return build_samples(page, input, self.config.sample_options(), self.name)


@register("web.render")
class WebRenderer(RenderingOperator):
    """Renders URLs (its inputs) or the `web_page` samples of `web.crawl`.

    Chromium never touches the network: the page and every sub-resource are fetched by the SSRF-guarded
    fetcher, only from the page's own host and `allow_hosts`; anything else is blocked and counted.
    """

    version = "1"

    class Config(RenderConfig):
        urls: StrList = Field(default_factory=list, description="pages to render (the input units)")
        inputs: StrList = Field(default_factory=list, description="alias of `urls`")
        allow_hosts: StrList = Field(default_factory=list, description="hosts/IPs/CIDRs pages may load from, "
                                     "also exempt from the private-address refusal (e.g. 127.0.0.1)")
        max_bytes: int = Field(5_000_000, ge=1024, description="largest page or resource body")
        max_redirects: int = Field(5, ge=0)
        fetch_timeout_s: float = Field(5.0, gt=0)

    def __init__(self, config=None):
        super().__init__(config)
        c = self.config
        self.guard = AddressGuard(tuple(c.allow_hosts))
        self.fetcher = Fetcher(self.guard, c.fetch_timeout_s, c.max_bytes, c.max_redirects)

    def list_inputs(self) -> list[str]:
        return list(dict.fromkeys([*self.config.urls, *self.config.inputs]))

    def _resolver(self, page_url: str) -> Resolver:
        page_host = host_of(page_url)

        def resolve(url: str, deadline: float) -> FetchResult:
            if host_of(url) != page_host and not self.guard.host_allowed(url):
                raise FetchError("blocked_host", url[:200])
            return self.fetcher.fetch(url, deadline=deadline)

        return resolve

    def read(self, input: str) -> Iterable[Sample | Rejection]:
        """Fetch one URL through the guard, check it is decodable HTML, render it."""
        try:
            self.guard.check_scheme(input)
            res = self.fetcher.fetch(input, accept="text/html,*/*;q=0.5")
        except FetchError as e:
            self.stats[f"rejected_{e.reason}"] += 1
            raise Reject(e.reason, f"{input}: {e.detail}", page_key(input) if "://" in input else "") from None
        final = normalize_url(res.redirects[-1] if res.redirects else input)
        if res.status != 200:
            raise Reject(f"http_{res.status}", input, page_key(final))
        if res.content_type not in ("text/html", "application/xhtml+xml"):
            raise Reject("not_html", f"{input}: content-type {res.content_type or '(none)'}", page_key(final))
        try:
            html = decode_html(res.body, res.charset)
        except FetchError as e:
            raise Reject(e.reason, f"{input}: {e.detail}", page_key(final)) from None
        return self.render_samples(input, final, html.encode("utf-8"), self._resolver(final))

    def process(self, sample: Sample) -> Iterable[Sample | Rejection]:
        """Render a crawled page (task `web_page`); any other sample passes through unchanged."""
        if sample.task != "web_page" or "html" not in sample.meta:
            return [sample]
        url = sample.meta["url"]
        return self.render_samples(sample.input, url, sample.meta["html"].encode("utf-8"), self._resolver(url))
