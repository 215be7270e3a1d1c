"""Chromium through Playwright's sync API: one browser per worker, a fresh context per page.

`PageRenderer.render` answers every request of the page itself (a resolver: live fetch through the SSRF
guard, or a WARC archive), so Chromium never opens a network connection of its own.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from operators.web.net import FetchError, FetchResult, normalize_url

log = logging.getLogger(__name__)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# name: (width, height, device scale, mobile)
VIEWPORTS: dict[str, tuple[int, int, float, bool]] = {
    "desktop": (1280, 800, 1.0, False),
    "laptop": (1366, 768, 1.0, False),
    "mobile": (390, 844, 2.0, True),
}
EXTRACT_JS = (Path(__file__).with_name("extract.js")).read_text()
# Response headers that would contradict the body we hand to Chromium.
_DROP_HEADERS = {"content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive"}

_PAGE_TYPES = {"text/html", "application/xhtml+xml", "text/plain", ""}

Resolver = Callable[[str, float], FetchResult]


class RenderError(Exception):
    """A page that could not be rendered; `reason` is the ledger reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class RenderOptions:
    viewport: str = "desktop"
    device_scale: float | None = None
    javascript: bool = True
    wait_until: str = "load"
    idle_ms: int = 0
    timeout_s: float = 15.0
    max_height: int = 4000  # CSS pixels captured at most
    image_format: str = "jpeg"
    jpeg_quality: int = 85
    reject_dialogs: bool = True
    reject_popups: bool = True


@dataclass
class RenderedPage:
    url: str
    tiles: list[bytes]
    tile_sizes: list[tuple[int, int]]  # (width, height) in image pixels
    image_ext: str
    scale: float
    viewport: tuple[int, int]
    doc_size: tuple[int, int]  # CSS pixels of the whole document
    captured_height: int  # CSS pixels captured (<= max_height)
    data: dict[str, Any]  # what extract.js returned
    images: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # url -> (content type, bytes)
    blocked: list[tuple[str, str]] = field(default_factory=list)  # (url, reason)
    events: Counter = field(default_factory=Counter)


def _chromium_children(pid: int) -> list[Any]:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


class BrowserSession:
    """Owns the Playwright driver and one Chromium; restarts it after a crash."""

    def __init__(self) -> None:
        self._pw: Any = None
        self.browser: Any = None
        self.pid: int | None = None
        self.driver_pid: int | None = None
        self.restarts = 0

    def start(self) -> None:
        import psutil
        from playwright.sync_api import sync_playwright

        me = psutil.Process(os.getpid())
        if self._pw is None:
            before = {p.pid for p in me.children()}
            self._pw = sync_playwright().start()
            self.driver_pid = next((p.pid for p in me.children() if p.pid not in before), None)
        before = {p.pid for p in me.children(recursive=True)}
        self.browser = self._pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        self.pid = None
        for p in me.children(recursive=True):
            try:
                if p.pid not in before and "chrom" in p.name() and not any(
                        a.startswith("--type=") for a in p.cmdline()):
                    self.pid = p.pid
                    break
            except psutil.Error:
                continue

    def connected(self) -> bool:
        return self.browser is not None and self.browser.is_connected()

    def restart(self) -> None:
        self.restarts += 1
        log.warning("restarting Chromium (restart %d)", self.restarts)
        try:
            if self.browser is not None:
                self.browser.close()
        except Exception as e:  # noqa: BLE001  a crashed browser may fail to close; the new one matters
            log.debug("closing crashed browser: %s", e)
        self.kill()
        if not self.alive(self.driver_pid):  # the driver was killed to unblock a hung call: start afresh
            try:
                self._pw.stop()
            except Exception as e:  # noqa: BLE001  a dead driver cannot stop cleanly
                log.debug("stopping dead driver: %s", e)
            self._pw = None
        self.start()

    @staticmethod
    def alive(pid: int | None) -> bool:
        import psutil

        try:
            return pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def kill_driver(self) -> None:
        """Kill the Playwright driver: the one way to unblock a call that waits on a dead browser forever."""
        import psutil

        try:
            if self.driver_pid is not None:
                psutil.Process(self.driver_pid).kill()
        except psutil.Error:
            pass

    def kill(self) -> None:
        """Kill the browser process tree (crash recovery; also the crash test's hammer)."""
        import psutil

        if self.pid is None:
            return
        try:
            proc = psutil.Process(self.pid)
            for p in [*proc.children(recursive=True), proc]:
                p.kill()
        except psutil.Error:
            pass

    def kill_renderers(self) -> int:
        """Kill the renderer processes: the only way to stop a page stuck in an endless script."""
        import psutil

        n = 0
        for p in _chromium_children(self.pid) if self.pid else []:
            try:
                if "--type=renderer" in p.cmdline():
                    p.kill()
                    n += 1
            except psutil.Error:  # the process may be gone already
                continue
        return n

    def close(self) -> None:
        try:
            if self.browser is not None and self.browser.is_connected():
                self.browser.close()
        finally:
            self.browser = None
            if self._pw is not None:
                self._pw.stop()
                self._pw = None


class _Watchdog:
    """Kills the page's renderer when a script call overruns: `page.evaluate` has no timeout of its own."""

    def __init__(self, session: BrowserSession, seconds: float):
        self.session, self.seconds, self.fired = session, seconds, False
        self._timer: threading.Timer | None = None

    def _fire(self) -> None:
        self.fired = True
        self.session.kill_renderers()

    def __enter__(self) -> Self:
        self._timer = threading.Timer(self.seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer:
            self._timer.cancel()


class _Deadman(threading.Thread):
    """Watches one render from outside: when the browser process died (Playwright may then wait forever,
    e.g. in `new_page`) or the render overran its hard limit, it kills the driver so the call raises."""

    def __init__(self, session: BrowserSession, hard_s: float):
        super().__init__(daemon=True, name="render-deadman")
        self.session, self.hard_s, self.fired = session, hard_s, ""
        self.done = threading.Event()

    def run(self) -> None:
        t_end, dead_since = time.monotonic() + self.hard_s, None
        while not self.done.wait(0.25):
            now = time.monotonic()
            if not self.session.alive(self.session.pid):
                dead_since = dead_since or now
            if (dead_since and now - dead_since > 3.0) or now > t_end:
                self.fired = "browser_crash" if dead_since else "render_timeout"
                log.warning("render stuck (%s): killing the Playwright driver", self.fired)
                self.session.kill_driver()
                return


class PageRenderer:
    """Renders one page at a time in a fresh context of a shared browser."""

    def __init__(self, options: RenderOptions, session: BrowserSession | None = None):
        self.opt = options
        self.session = session or BrowserSession()
        self._own_session = session is None

    def start(self) -> None:
        if not self.session.connected():
            self.session.start()

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def _context(self) -> Any:
        w, h, scale, mobile = VIEWPORTS[self.opt.viewport]
        return self.session.browser.new_context(
            viewport={"width": w, "height": h}, device_scale_factor=self.opt.device_scale or scale,
            is_mobile=mobile, has_touch=mobile, java_script_enabled=self.opt.javascript,
            accept_downloads=False, service_workers="block", bypass_csp=False, locale="en-US",
            timezone_id="UTC")

    def render(self, url: str, html: bytes, resolve: Resolver) -> RenderedPage:
        """Render `html` as if served at `url`; sub-resources come from `resolve` (which may refuse)."""
        if not self.session.connected() or not self.session.alive(self.session.driver_pid):
            self.session.restart()
        deadman = _Deadman(self.session, self.opt.timeout_s * 2 + 10)
        deadman.start()
        try:
            return self._render(url, html, resolve)
        except RenderError:
            if deadman.fired:
                self._after_failure()
            raise
        except Exception as e:  # after the deadman killed the driver, calls fail with assorted errors
            if not deadman.fired:
                raise
            self._after_failure()
            raise RenderError(deadman.fired, f"{type(e).__name__}: {str(e)[:200]}") from None
        finally:
            deadman.done.set()

    def _render(self, url: str, html: bytes, resolve: Resolver) -> RenderedPage:
        from playwright.sync_api import Error as PWError

        t_end = time.monotonic() + self.opt.timeout_s
        events: Counter = Counter()
        blocked: list[tuple[str, str]] = []
        images: dict[str, tuple[str, bytes]] = {}
        refused: set[str] = set()
        main = normalize_url(url)
        try:
            ctx = self._context()
        except PWError as e:
            self._after_failure()
            raise RenderError("browser_crash", f"new context: {e}") from None
        try:
            ctx.set_default_timeout(self.opt.timeout_s * 1000)

            def on_route(route: Any) -> None:
                req = route.request
                scheme = urlsplit(req.url).scheme
                if scheme in ("data", "blob"):
                    route.continue_()
                    return
                nav = req.is_navigation_request()
                if nav and scheme in ("http", "https") and normalize_url(req.url) == main and not events["main"]:
                    events["main"] += 1
                    route.fulfill(status=200, headers={"content-type": "text/html; charset=utf-8"}, body=html)
                    return
                if req.url in refused:  # Chromium asks again (preload scanner, then the parser): count once
                    route.abort("blockedbyclient")
                    return
                try:
                    res = resolve(req.url, min(t_end, time.monotonic() + self.opt.timeout_s / 2))
                except FetchError as e:
                    blocked.append((req.url, e.reason))
                    refused.add(req.url)
                    route.abort("blockedbyclient")
                    return
                except Exception as e:  # noqa: BLE001  a resolver bug must fail the resource, not hang the page
                    log.warning("resolver failed on %s: %r", req.url, e)
                    blocked.append((req.url, "resource_error"))
                    refused.add(req.url)
                    route.abort("failed")
                    return
                if nav and ("attachment" in res.headers.get("content-disposition", "").lower()
                            or res.content_type not in _PAGE_TYPES):
                    events["download"] += 1  # refused before Chromium starts a download
                    blocked.append((req.url, "download_refused"))
                    route.abort("blockedbyclient")
                    return
                headers = {k: v for k, v in res.headers.items() if k not in _DROP_HEADERS}
                route.fulfill(status=res.status, headers=headers, body=res.body)
                if req.resource_type == "image" and res.status == 200:
                    images[req.url] = (res.content_type, res.body)

            ctx.route("**/*", on_route)
            ctx.on("page", lambda p: None)
            page = ctx.new_page()
            page.on("dialog", lambda d: (events.update(["dialog"]), d.dismiss()))
            page.on("popup", lambda p: (events.update(["popup"]), p.close()))
            page.on("download", lambda d: (events.update(["download"]), d.cancel()))
            page.on("crash", lambda p: events.update(["crash"]))
            return self._capture(page, url, t_end, events, blocked, images)
        except RenderError:
            raise
        except PWError as e:
            msg = str(e).split("\n")[0][:300]
            if not self.session.connected():
                self._after_failure()
                raise RenderError("browser_crash", msg) from None
            if events["download"] or "Download is starting" in msg:
                raise RenderError("download_refused", msg) from None
            if events["crash"] or "crash" in msg.lower():
                raise RenderError("render_timeout" if events["watchdog"] else "page_crash", msg) from None
            if "Timeout" in msg or "timeout" in msg:
                raise RenderError("render_timeout", msg) from None
            raise RenderError("render_error", msg) from None
        finally:
            try:
                ctx.close()
            except Exception as e:  # noqa: BLE001  a crashed browser or driver fails to close; nothing leaks
                log.debug("closing context: %s", e)

    def _after_failure(self) -> None:
        if self.session.connected() and self.session.alive(self.session.driver_pid):
            return  # already restarted
        try:
            self.session.restart()
        except Exception as e:  # noqa: BLE001  a failed restart is retried on the next page
            log.error("Chromium restart failed: %s", e)

    def _guarded_eval(self, page: Any, events: Counter, script: str, arg: Any = None) -> Any:
        wd = _Watchdog(self.session, max(1.0, self.opt.timeout_s / 3))
        with wd:
            try:
                return page.evaluate(script, arg)
            finally:
                if wd.fired:
                    events["watchdog"] += 1

    def _capture(self, page: Any, url: str, t_end: float, events: Counter, blocked: list, images: dict) -> RenderedPage:
        from playwright.sync_api import TimeoutError as PWTimeout

        opt = self.opt
        page.goto(url, wait_until=opt.wait_until, timeout=max(1.0, t_end - time.monotonic()) * 1000)
        if opt.idle_ms:
            try:
                page.wait_for_load_state("networkidle", timeout=opt.idle_ms)
            except PWTimeout:
                events["idle_timeout"] += 1  # a busy page is still rendered as it is now
        self._check_events(events)
        w, h, scale, _ = VIEWPORTS[opt.viewport]
        scale = opt.device_scale or scale
        # one script call before the screenshot: layout is settled after load, and it sizes the clip
        data = self._guarded_eval(page, events, EXTRACT_JS, {"maxY": h})
        doc_w, doc_h = data["doc_w"], data["doc_h"]
        cap_h = max(1, min(int(doc_h), opt.max_height))
        kw: dict[str, Any] = {"type": opt.image_format, "full_page": True,
                              "clip": {"x": 0, "y": 0, "width": w, "height": cap_h},
                              "timeout": max(1.0, t_end - time.monotonic()) * 1000}
        if opt.image_format == "jpeg":
            kw["quality"] = opt.jpeg_quality
        shot = page.screenshot(**kw)
        self._check_events(events)
        tiles, sizes = split_tiles(shot, round(h * scale), opt.image_format, opt.jpeg_quality)
        return RenderedPage(url, tiles, sizes, "jpg" if opt.image_format == "jpeg" else "png", scale, (w, h),
                            (int(doc_w), int(doc_h)), cap_h, data, images, blocked, events)

    def _check_events(self, events: Counter) -> None:
        if events["download"]:
            raise RenderError("download_refused", f"{events['download']} download(s) started")
        if events["popup"] and self.opt.reject_popups:
            raise RenderError("page_popup", f"{events['popup']} popup(s) opened and closed")
        if events["dialog"] and self.opt.reject_dialogs:
            raise RenderError("page_dialog", f"{events['dialog']} dialog(s) dismissed")


def split_tiles(shot: bytes, tile_h: int, fmt: str, quality: int) -> tuple[list[bytes], list[tuple[int, int]]]:
    """Cut a tall screenshot into viewport-high tiles; a screenshot that fits is returned unchanged."""
    from PIL import Image

    im = Image.open(BytesIO(shot))
    W, H = im.size
    if H <= tile_h:
        return [shot], [(W, H)]
    tiles, sizes = [], []
    for y in range(0, H, tile_h):
        tile = im.crop((0, y, W, min(H, y + tile_h)))
        buf = BytesIO()
        if fmt == "jpeg":
            tile.convert("RGB").save(buf, "JPEG", quality=quality)
        else:
            tile.save(buf, "PNG")
        tiles.append(buf.getvalue())
        sizes.append(tile.size)
    return tiles, sizes
