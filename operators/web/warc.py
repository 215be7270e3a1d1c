"""`web.warc`: archived pages (WARC files, the Common Crawl format) rendered from the archive alone.

Every request of a page is answered from the same WARC (indexed by URL, bodies read on demand), so
rendering needs no network at all. `archive_pages` writes such a WARC from live pages (tests, demo).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin

from pydantic import Field

from operators.base import Reject, register
from operators.sample import Rejection, Sample
from operators.web.browser import Resolver
from operators.web.common import StrList, page_key
from operators.web.net import Fetcher, FetchError, FetchResult, decode_html, normalize_url
from operators.web.render import RenderConfig, RenderingOperator

log = logging.getLogger(__name__)

PAGE_TYPES = ("text/html", "application/xhtml+xml")


class WarcIndex:
    """URL -> offset of its response record; bodies are read back by seeking (one gzip member each)."""

    def __init__(self, path: str | Path):
        from warcio.archiveiterator import ArchiveIterator

        self.path = Path(path)
        self.offsets: dict[str, int] = {}
        self.pages: list[str] = []
        self._fh: BinaryIO = open(self.path, "rb")  # noqa: SIM115  open while pages render; close()
        head = self._fh.read(8)
        self._fh.seek(0)
        if not (head.startswith((b"WARC/", b"\x1f\x8b"))):
            self._fh.close()
            raise ValueError(f"not a WARC file (starts with {head!r})")
        it = ArchiveIterator(self._fh)
        for rec in it:
            if rec.rec_type != "response" or rec.http_headers is None:
                continue
            uri = rec.rec_headers.get_header("WARC-Target-URI") or ""
            if not uri.startswith(("http://", "https://")):
                continue
            url = normalize_url(uri)
            if url in self.offsets:
                continue  # first capture wins, as in replay tools
            self.offsets[url] = it.get_record_offset()
            ctype = (rec.http_headers.get_header("Content-Type") or "").split(";")[0].strip().lower()
            if ctype in PAGE_TYPES and rec.http_headers.get_statuscode() == "200":
                self.pages.append(url)

    def get(self, url: str) -> FetchResult:
        from warcio.archiveiterator import ArchiveIterator

        off = self.offsets.get(normalize_url(url))
        if off is None:
            raise FetchError("not_in_archive", url[:200])
        self._fh.seek(off)
        rec = next(iter(ArchiveIterator(self._fh)))
        headers = {k.lower(): v for k, v in rec.http_headers.headers}
        status = int(rec.http_headers.get_statuscode() or 0)
        return FetchResult(url, url, status, headers, rec.content_stream().read())

    def close(self) -> None:
        self._fh.close()


@register("web.warc")
class WarcRenderer(RenderingOperator):
    """Renders every HTML page of each WARC file with sub-resources answered from that WARC."""

    version = "1"

    class Config(RenderConfig):
        inputs: StrList = Field(default_factory=list, description="WARC files or folders of *.warc[.gz]")
        max_pages: int = Field(10_000, ge=1, description="pages rendered per WARC file")

    def list_inputs(self) -> list[str]:
        out: list[str] = []
        for p in map(Path, self.config.inputs):
            if p.is_dir():
                out += sorted(str(f) for f in p.iterdir() if f.name.endswith((".warc", ".warc.gz")))
            elif p.is_file():
                out.append(str(p))
            else:
                raise ValueError(f"web.warc: input {p} does not exist")
        return out

    def read(self, input: str) -> Iterable[Sample | Rejection]:
        try:
            index = WarcIndex(input)
        except Exception as e:  # noqa: BLE001  warcio raises many types for a file that is not a WARC
            raise Reject("bad_warc", f"{input}: {type(e).__name__}: {e}") from None
        if not index.pages:
            index.close()
            raise Reject("no_pages", f"{input}: no HTML response records")
        try:
            for url in index.pages[: self.config.max_pages]:
                yield from self._page(input, url, index)
            if len(index.pages) > self.config.max_pages:
                self.stats["pages_over_limit"] += len(index.pages) - self.config.max_pages
        finally:
            index.close()

    def _page(self, input: str, url: str, index: WarcIndex) -> list[Sample | Rejection]:
        def resolve(u: str, deadline: float) -> FetchResult:
            return index.get(u)

        resolver: Resolver = resolve
        try:
            res = index.get(url)
            html = decode_html(res.body, res.charset)
            return self.render_samples(input, url, html.encode("utf-8"), resolver)
        except FetchError as e:
            return [Rejection(input, self.name, e.reason, f"{url}: {e.detail}", page_key(url))]
        except Reject as r:
            return [Rejection(input, self.name, r.reason, r.detail, r.key or page_key(url))]


class _AssetParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("img", "script") and a.get("src"):
            self.refs.append(a["src"] or "")
        elif tag == "link" and a.get("href") and "stylesheet" in (a.get("rel") or ""):
            self.refs.append(a["href"] or "")


def archive_pages(urls: list[str], out_path: str | Path, fetcher: Fetcher) -> list[str]:
    """Fetch pages and their images, scripts and stylesheets into a gzipped WARC; returns URLs written."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    written: list[str] = []
    todo = list(urls)
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp")
    with open(tmp, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        while todo:
            url = normalize_url(todo.pop(0))
            if url in written:
                continue
            try:
                res = fetcher.fetch(url)
            except FetchError as e:
                log.info("not archived %s: %s", url, e)
                continue
            written.append(url)
            http = StatusAndHeaders(f"{res.status} OK", list(res.headers.items()), protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(url, "response", payload=BytesIO(res.body),
                                                          http_headers=http))
            if res.content_type in PAGE_TYPES and url in map(normalize_url, urls):
                p = _AssetParser()
                p.feed(res.body.decode("utf-8", "replace"))
                todo += [urljoin(url, r) for r in p.refs if not r.startswith(("data:", "javascript:"))]
    tmp.replace(out_path)
    return written
