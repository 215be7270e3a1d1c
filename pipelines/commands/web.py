"""`dsvl-data web ...`: serve the local demo/test site and archive pages into a WARC (thin wrappers)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

web_app = typer.Typer(help="Web part: local demo site, WARC archiving.", no_args_is_help=True)

DEMO_ROOT = Path(__file__).resolve().parents[2] / "tests" / "data" / "demo_site"


@web_app.command("serve-demo")
def serve_demo(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1 (0 picks a free one)")] = 8765,
    root: Annotated[Path, typer.Option(help="folder to serve")] = DEMO_ROOT,
    seconds: Annotated[float, typer.Option(help="stop after this long (0: until interrupted)")] = 0.0,
) -> None:
    """Serve a site (the demo site by default) on 127.0.0.1, with the test server's hostile routes."""
    from rich.console import Console

    from operators.web.testserver import TestSiteServer

    if not root.is_dir():
        raise typer.BadParameter(f"{root} is not a folder", param_hint="--root")
    with TestSiteServer(root, port=port) as srv:
        Console().print(f"serving {root} at {srv.url('/')}", highlight=False)
        try:
            deadline = time.monotonic() + seconds if seconds else None
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass


@web_app.command("archive")
def archive(
    urls: Annotated[list[str], typer.Argument(help="pages to archive (their images, CSS and JS come along)")],
    out: Annotated[Path, typer.Option(help="the .warc.gz to write")],
    allow_hosts: Annotated[str, typer.Option(help="hosts/IPs/CIDRs exempt from the private-address "
                                             "refusal, comma-separated (e.g. 127.0.0.1)")] = "",
) -> None:
    """Fetch pages through the SSRF guard and write them to a WARC for `web.warc`."""
    from rich.console import Console

    from operators.web.net import AddressGuard, Fetcher
    from operators.web.warc import archive_pages

    guard = AddressGuard(tuple(h for h in allow_hosts.split(",") if h))
    written = archive_pages(urls, out, Fetcher(guard))
    Console().print(f"wrote {len(written)} records to {out}", highlight=False)
    if not written:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this part's commands to the main app."""
    app.add_typer(web_app, name="web")
