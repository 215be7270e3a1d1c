"""`web.render` and `web.warc` in real Chromium against the local test site (one browser for the module)."""

from __future__ import annotations

import threading
from io import BytesIO

import pytest
from PIL import Image

from operators.base import get_operator, run_operator
from operators.sample import Rejection, Sample
from operators.web.browser import BrowserSession
from operators.web.crawl import WebCrawler
from operators.web.net import AddressGuard, Fetcher
from operators.web.render import WebRenderer
from operators.web.testserver import TestSiteServer
from operators.web.warc import WarcRenderer, archive_pages

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site():
    with TestSiteServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def session():
    s = BrowserSession()
    s.start()
    yield s
    s.close()


def make(session, cls=WebRenderer, **cfg):
    base = {"allow_hosts": "127.0.0.1", "timeout_s": 12, "fetch_timeout_s": 1.5} if cls is WebRenderer else {}
    op = cls({**base, **cfg})
    op.use_session(session)
    return op


def split(out):
    return ({s.key.rsplit("-", 1)[1]: s for s in out if isinstance(s, Sample)},
            [r for r in out if isinstance(r, Rejection)])


def size(data: bytes) -> tuple[int, int]:
    with Image.open(BytesIO(data)) as im:
        im.load()
        return im.size


def test_gallery_page_gives_every_sample_kind(site, session):
    op = make(session)
    samples, rejects = split(op.run([site.url("/gallery.html")]))
    assert sorted(samples) == ["alt1", "alt2", "code", "doc", "ground", "ocr", "summary", "ui2code", "widgets"]
    base = samples["code"].key.rsplit("-", 1)[0]
    assert base.startswith("web-") and all(s.key.startswith(base) for s in samples.values())
    code = samples["code"]
    assert code.category == "web_code" and code.stage == [2] and code.images == ["0.jpg", "1.jpg"]
    assert [size(b) for b in code.image_bytes] == [(1280, 800), (1280, 501)]
    assert code.text.startswith("<image><image>\n<!DOCTYPE html>") and "<h1>Gallery</h1>" in code.text
    assert "<script" not in code.text and ".card img { width: 260px" in code.text  # CSS inlined, JS gone
    sft = samples["ui2code"]
    assert sft.stage == [3] and sft.taxonomy[0]["id"] == "ui-to-code" and sft.messages[1]["content"] in code.text
    assert {samples[k].taxonomy[0]["id"] for k in ("ocr", "ground", "summary", "widgets")} == {
        "printed-text", "position-description", "text-summary", "pointing-description"}
    caps = [samples["alt1"], samples["alt2"]]
    assert [c.text for c in caps] == ["<image>\nA red wooden fishing boat pulled up on a pebble beach",
                                      "<image>\nHand-drawn map of the harbour with depth soundings"]
    assert all(c.category == "caption" and c.stage == [1, 2] for c in caps)
    assert [size(c.image_bytes[0]) for c in caps] == [(320, 240), (320, 240)]
    doc = samples["doc"]
    assert doc.category == "interleaved" and doc.text.count("<image>") == len(doc.images) == 4
    assert doc.text.index("Selected objects") < doc.text.index("<image>") < doc.text.index("Maria, built in 1932")
    assert sorted((r.key.rsplit("-", 1)[1], r.reason) for r in rejects) == [
        ("alt3", "alt_filtered"), ("alt7", "alt_filtered"), ("img4", "image_too_small"),
        ("img5", "bad_image"), ("img6", "image_missing")]
    assert all(r.operator == "web.render" for r in rejects)


def test_long_page_is_capped_and_tiled(site, session):
    op = make(session, max_height=3000, image_format="png")
    samples, _ = split(op.run([site.url("/long.html")]))
    code = samples["code"]
    assert code.meta["doc_size"][1] > 5000 and code.meta["captured_height"] == 3000
    assert code.images == ["0.png", "1.png", "2.png", "3.png"]
    assert [size(b) for b in code.image_bytes] == [(1280, 800)] * 3 + [(1280, 600)]
    assert all(b.startswith(b"\x89PNG") for b in code.image_bytes)


def test_dom_boxes_lie_inside_the_image_on_the_right_pixels(site, session):
    op = make(session, image_format="png")
    samples, _ = split(op.run([site.url("/index.html")]))
    shot = Image.open(BytesIO(samples["ocr"].image_bytes[0])).convert("RGB")
    W, H = shot.size
    boxes = samples["ocr"].meta["boxes"]
    assert len(boxes) >= 15 and all(0 <= b["box"][0] < b["box"][2] <= W and 0 <= b["box"][1] < b["box"][3] <= H
                                     for b in boxes)
    h1 = next(b for b in boxes if b["tag"] == "h1")
    assert h1["text"] == "Harbour Town Museum"
    assert "This line was written by JavaScript." in [b["text"] for b in boxes]
    button = next(w for w in samples["widgets"].meta["widgets"] if w["tag"] == "a")
    assert samples["widgets"].messages[1]["content"] == f"A link labelled \"{button['label']}\"."
    # the header is dark blue (#1d4e89) around the first nav link's box
    x0, y0, _x1, y1 = button["box"]
    assert shot.getpixel((x0 - 3, (y0 + y1) // 2)) == (29, 78, 137)
    ground = samples["ground"]
    assert len(ground.messages) == 8 and ground.messages[0]["content"].startswith("<image>\nWhere is the text")


def test_mobile_viewport_without_javascript(site, session):
    op = make(session, viewport="mobile", javascript=False, samples="code")
    samples, rejects = split(op.run([site.url("/index.html")]))
    assert sorted(samples) == ["code", "ui2code"] and not rejects
    assert size(samples["code"].image_bytes[0])[0] == 390 * 2  # device scale 2
    assert "written by JavaScript" not in samples["code"].text


def test_laptop_preset_with_device_scale_override(site, session):
    op = make(session, viewport="laptop", device_scale=1.5, samples="code")
    samples, _ = split(op.run([site.url("/table.html")]))
    assert size(samples["code"].image_bytes[0]) == (2049, 1152)  # 1366x768 CSS pixels at scale 1.5
    assert samples["code"].meta["scale"] == 1.5 and samples["code"].meta["viewport"] == [1366, 768]


@pytest.mark.parametrize("path,reason", [
    ("/hostile/dialog.html", "page_dialog"),
    ("/hostile/popup.html", "page_popup"),
    ("/hostile/download.html", "download_refused"),
    ("/hostile/jsloop.html", "render_timeout"),
    ("/hostile/jsloop-late.html", "render_timeout"),
    ("/huge/50", "page_too_large"),
    ("/never/", "fetch_timeout"),
    ("/loop/a", "redirect_loop"),
    ("/ssrf/meta", "blocked_address"),
    ("/ssrf/private", "blocked_address"),
    ("/ssrf/file", "blocked_scheme"),
    ("/enc/bad-utf8", "bad_encoding"),
    ("/enc/latin1", "undeclared_encoding"),
    ("/download/file.bin", "not_html"),
    ("/missing-page.html", "http_404"),
])
def test_bad_pages_are_rejections(site, session, path, reason):
    op = make(session, timeout_s=3)
    out = op.run([site.url(path)])
    assert [(type(o).__name__, o.reason) for o in out] == [("Rejection", reason)]
    assert out[0].key.startswith("web-") and out[0].operator == "web.render"


def test_file_url_input_is_refused(session):
    out = make(session).run(["file:///etc/passwd"])
    assert [o.reason for o in out] == ["blocked_scheme"]


def test_outside_hosts_and_stalled_resources_are_blocked_not_fatal(site, session):
    op = make(session)
    out = op.run([site.url("/hostile/external.html"), site.url("/hostile/slowimg.html")])
    samples, _ = split(out)
    assert samples["summary"].meta["blocked"] >= 1 and op.stats["pages"] == 2
    # 10.0.0.1, example.com and 169.254.169.254 are refused by host before any lookup; /never/image stalls
    assert op.stats["blocked_requests"] == 4


def test_browser_crash_restarts_and_goes_on(site, session):
    op = make(session, fetch_timeout_s=4)
    pid = session.pid
    killer = threading.Timer(1.0, session.kill)
    killer.start()
    out = op.run([site.url("/hostile/slowimg.html"), site.url("/table.html")])
    killer.join()
    assert isinstance(out[0], Rejection) and out[0].reason == "browser_crash"
    assert any(isinstance(o, Sample) and o.key.endswith("-code") for o in out[1:])
    assert session.connected() and session.pid != pid and session.restarts >= 1


def test_render_after_crawl_as_a_transform(site, session):
    crawler = WebCrawler({"allow_hosts": "127.0.0.1", "max_depth": 0, "min_delay_s": 0})
    pages = [s for s in crawler.run([site.url("/table.html")]) if isinstance(s, Sample)]
    other = Sample(key="text-x", input="x", source="t", task="text", category="text_only", stage=[2], text="hi")
    op = make(session, samples="code,summary")
    out = run_operator(op, [pages[0], other])
    keys = [o.key for o in out]
    assert keys[-1] == "text-x" and sorted(keys[:-1]) == sorted(f"{pages[0].key}-{k}" for k in
                                                                 ("code", "ui2code", "summary"))
    assert "Groups of ten" in out[0].text
    assert get_operator("web.render") is WebRenderer


def test_warc_round_trip_renders_without_the_server(tmp_path, session):
    warc = tmp_path / "site.warc.gz"
    with TestSiteServer() as srv:
        urls = [srv.url("/gallery.html"), srv.url("/table.html")]
        written = archive_pages(urls, warc, Fetcher(AddressGuard(("127.0.0.1",))))
    assert len(written) == 2 + 1 + 1 + 6  # pages, style.css, app.js, six images (missing.png is a 404)
    (tmp_path / "broken.warc").write_bytes(b"this is not a WARC file\n" * 10)
    op = make(session, WarcRenderer, inputs=str(tmp_path))
    inputs = op.list_inputs()
    assert [p.rsplit("/", 1)[1] for p in inputs] == ["broken.warc", "site.warc.gz"]
    out = op.run(inputs)  # the server is gone: every byte comes from the archive
    assert [(o.input.rsplit("/", 1)[1], o.reason) for o in out if isinstance(o, Rejection) and
            o.reason == "bad_warc"] == [("broken.warc", "bad_warc")]
    samples = [o for o in out if isinstance(o, Sample)]
    assert {s.key.rsplit("-", 1)[1] for s in samples if s.category == "caption"} == {"alt1", "alt2"}
    assert sum(s.task == "screenshot_to_html" for s in samples) == 2
    assert op.stats["blocked_requests"] == 0 and op.stats["pages"] == 2
    gallery = next(s for s in samples if s.task == "interleaved_web")
    assert len(gallery.images) == 4 and gallery.provenance["url"] == urls[0]
