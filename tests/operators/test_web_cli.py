"""The web part's CLI commands, recipe and `run-op` path (no Ray, no browser except run-op's one page)."""

from __future__ import annotations

import json
import threading

import pytest
from typer.testing import CliRunner

from operators.web.testserver import TestSiteServer
from pipelines.cli import app
from pipelines.recipe import load_recipe

runner = CliRunner()


def test_web_recipe_loads_and_takes_seeds():
    recipe = load_recipe("pipelines/web.yaml", ["seeds=http://127.0.0.1:9/a.html,http://127.0.0.1:9/b.html"])
    (src, chain), = recipe.sources
    assert src.name == "web.crawl" and [s.name for s in chain] == ["web.render"]
    assert src.build().list_inputs() == ["http://127.0.0.1:9/a.html", "http://127.0.0.1:9/b.html"]
    assert chain[0].config.allow_hosts == ["127.0.0.1"]
    with pytest.raises(ValueError, match="unknown sample kinds"):
        load_recipe("pipelines/web.yaml", ["sources.0.steps.0.with.samples=code,poems"])


def test_archive_command_writes_a_warc(tmp_path):
    with TestSiteServer() as srv:
        res = runner.invoke(app, ["web", "archive", srv.url("/table.html"), "--out", str(tmp_path / "t.warc.gz"),
                                  "--allow-hosts", "127.0.0.1"])
        assert res.exit_code == 0, res.output
        assert "wrote 3 records" in res.output  # the page, its stylesheet and its script
        res = runner.invoke(app, ["web", "archive", "http://10.0.0.1/", "--out", str(tmp_path / "x.warc.gz")])
        assert res.exit_code == 1 and "wrote 0 records" in res.output


def test_serve_demo_serves_the_demo_site():
    import urllib.request

    result = {}

    def serve():
        result["res"] = runner.invoke(app, ["web", "serve-demo", "--port", "8799", "--seconds", "1.5"])

    t = threading.Thread(target=serve)
    t.start()
    body = b""
    for _ in range(20):
        try:
            body = urllib.request.urlopen("http://127.0.0.1:8799/index.html", timeout=2).read()
            break
        except OSError:
            threading.Event().wait(0.1)
    t.join()
    assert b"North Coast Maritime Collection" in body and result["res"].exit_code == 0


@pytest.mark.browser
def test_run_op_renders_urls(tmp_path):
    with TestSiteServer() as srv:
        res = runner.invoke(app, ["run-op", "web.render", srv.url("/table.html"), srv.url("/loop/a"),
                                  "--out", str(tmp_path), "--set", "allow_hosts=127.0.0.1", "--set", "samples=code"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()]
    rejects = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert sorted(r["task"] for r in rows) == ["screenshot_to_html", "ui_to_code"]
    assert [r["reason"] for r in rejects] == ["redirect_loop"]
