"""`dsvl-data build pipelines/web.yaml` on the shared Ray session: crawl + render the demo site, verify."""

from __future__ import annotations

import duckdb
import pytest

from operators.web.testserver import TestSiteServer
from pipelines.runner import build
from pipelines.verify import verify

pytestmark = [pytest.mark.ray, pytest.mark.browser]

DEMO = "tests/data/demo_site"


def test_web_recipe_builds_and_balances(tmp_path, ray_session):
    with TestSiteServer(DEMO) as srv:
        res = build("pipelines/web.yaml", tmp_path / "out",
                    [f"seeds={srv.url('/index.html')}", "max_depth=1", "sources.0.steps.0.with.samples=code,alt"])
        assert "/drafts/new.html" not in srv.log.paths()  # robots.txt
    assert verify(tmp_path / "out") == []
    con = duckdb.connect(str(tmp_path / "out" / "catalog.duckdb"), read_only=True)
    reasons = dict(con.sql("SELECT reason, count(*) FROM ledger WHERE status = 'rejected' GROUP BY 1").fetchall())
    assert reasons == {"robots_disallowed": 1}
    # four pages x (screenshot->HTML, ui-to-code) and the alt captions of the distinct images
    tasks = dict(con.sql("SELECT task, count(*) FROM samples GROUP BY 1").fetchall())
    assert tasks["screenshot_to_html"] == 4 and tasks["ui_to_code"] == 4 and tasks["alt_caption"] >= 4
    assert res.inputs == 1 and res.rejected == 1
