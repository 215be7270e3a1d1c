"""The annotators' app: the HTTP API (auth, validation, conflicts, labels) and the real page in Chromium."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from taxonomy.app.server import check_bind, create_app
from taxonomy.catalog import LabelStore
from taxonomy.ops import audit_path, read_audit
from taxonomy.schema import load

TOKEN = "s3cret-token"


def test_check_bind():
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("localhost", None)
    check_bind("0.0.0.0", "tok")
    for host in ("0.0.0.0", "192.168.1.5", "example.org"):
        with pytest.raises(ValueError, match="--token"):
            check_bind(host, None)


def test_api(tax_file: Path, catalog_dir: Path):
    c = TestClient(create_app(tax_file, catalog=catalog_dir, token=TOKEN))
    assert c.get("/api/taxonomy").status_code == 401
    assert c.get("/api/taxonomy", headers={"X-Token": "wrong"}).status_code == 401
    h = {"X-Token": TOKEN}
    t = c.get("/api/taxonomy", headers=h).json()
    assert t["counts"] == {"main": 8, "secondary": 19, "leaf": 88, "labelable": 89} and t["version"] == 1
    assert c.get("/api/taxonomy", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert c.get("/").status_code == 200  # the page itself holds no data
    edit = {"op": "edit", "args": {"id": "counting", "weight": 2.0}, "version": 1, "who": "alice"}
    r = c.post("/api/edit", json=edit, headers=h)
    assert r.status_code == 200 and r.json()["version"] == 2
    r = c.post("/api/edit", json={**edit, "args": {"id": "counting", "weight": 5.0}, "who": "bob"}, headers=h)
    assert r.status_code == 409 and r.json()["current"] == 2
    bad = [{**edit, "version": 2, "args": {"id": "counting", "weight": -1}},
           {**edit, "version": 2, "op": "move", "args": {"id": "counting", "parent": "theme"}},
           {**edit, "version": 2, "op": "add", "args": {"name": "Theme", "parent": "recognition", "id": "theme"}},
           {**edit, "version": 2, "args": {"id": "counting", "bogus": 1}},
           {**edit, "version": 2, "op": "add", "args": {"name": 123, "parent": "recognition"}},
           {**edit, "version": 2, "args": {"id": "counting", "examples": "not a list"}},
           {**edit, "version": 2, "args": {"id": "counting", "description": "x" * 100_000}},
           {**edit, "version": 2, "args": {"id": ["counting"], "weight": 1}}]
    for b in bad:
        assert c.post("/api/edit", json=b, headers=h).status_code == 422, b
    assert c.post("/api/edit", json={**edit, "op": "drop-table"}, headers=h).status_code == 422
    assert c.post("/api/edit", json={**edit, "who": "<script>"}, headers=h).status_code == 422
    assert load(tax_file).version == 2 and load(tax_file).node("counting").weight == 2.0
    assert [a["who"] for a in c.get("/api/audit", headers=h).json()] == ["alice"]
    # samples and labels
    assert c.get("/api/samples/next", headers=h).json() == {"key": "demo-0000"}
    s = c.get("/api/samples/demo-0000", headers=h).json()
    assert s["messages"][0]["role"] == "user" and s["images"] == ["0.png"]
    img = c.get("/api/samples/demo-0000/image/0", headers=h)
    assert img.headers["content-type"] == "image/png" and img.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert c.get("/api/samples/demo-0000/image/3", headers=h).status_code == 404
    assert c.get("/api/samples/nope", headers=h).status_code == 404
    lab = {"action": "label", "labels": ["counting"], "who": "alice"}
    assert c.post("/api/samples/demo-0000/label", json={**lab, "labels": ["recognition"]}, headers=h).status_code == 422
    assert c.post("/api/samples/demo-0000/label", json={**lab, "labels": []}, headers=h).status_code == 422
    assert c.post("/api/samples/demo-0000/label", json={**lab, "action": "flag", "labels": []},
                  headers=h).status_code == 422
    assert c.post("/api/samples/demo-0000/label", json=lab, headers=h).status_code == 200
    assert c.get("/api/samples/next", headers=h).json() == {"key": "demo-0001"}
    assert c.get("/api/samples/demo-0000", headers=h).json()["label"]["labels"] == ["counting"]
    assert c.get("/api/samples/next?after=demo-0004", headers=h).json() == {"key": "demo-0005"}
    assert c.get("/api/samples/next?after=demo-0005", headers=h).json() == {"key": None}
    assert c.get("/api/labels", headers=h).json()["by_action"] == {"label": 1, "skip": 0, "flag": 0}


def test_api_without_catalog_or_token(tax_file: Path):
    app = create_app(tax_file)
    c = TestClient(app, base_url="http://127.0.0.1:8780")
    assert c.get("/api/taxonomy").json()["has_catalog"] is False
    assert c.get("/api/samples/next").status_code == 404
    # no token: only loopback Host names (a DNS-rebinding page arrives with its own name)
    assert TestClient(app, base_url="http://evil.example").get("/api/taxonomy").status_code == 400
    assert TestClient(app, base_url="http://localhost:8780").get("/api/taxonomy").status_code == 200


@pytest.fixture
def live_server(tax_file: Path, catalog_dir: Path):
    """uvicorn on 127.0.0.1 (a free port) in a thread of this process."""
    import uvicorn

    app = create_app(tax_file, catalog=catalog_dir, token=TOKEN)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 20
    while not server.started:  # uvicorn exposes no start event; poll its flag
        assert time.monotonic() < deadline and th.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    th.join(timeout=10)


def _suggest(catalog_dir: Path, key: str, leaf: str) -> None:
    """Give a catalog sample a tagger suggestion, as the engine would after `taxonomy.tag`."""
    import json

    import duckdb

    with duckdb.connect(str(catalog_dir / "catalog.duckdb")) as con:
        d = json.loads(con.execute("SELECT json FROM samples WHERE key = ?", [key]).fetchone()[0])
        d["taxonomy"] = [{"id": leaf, "confidence": 0.5, "source": "rule:keyword"}]
        con.execute("UPDATE samples SET json = ?, taxonomy = [?] WHERE key = ?", [json.dumps(d), leaf, key])


@pytest.mark.browser
def test_browser_edit_conflict_and_label(live_server: str, tax_file: Path, catalog_dir: Path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            alice = browser.new_context().new_page()
            bob = browser.new_context().new_page()
            for page, name in ((alice, "alice"), (bob, "bob")):
                page.set_default_timeout(15_000)
                page.goto(f"{live_server}/?token={TOKEN}")
                expect(page.locator("#tax-version")).to_contain_text("8 main / 19 secondary / 88 leaf")
                expect(page.locator("#view-label")).to_be_hidden()
                page.fill("#who", name)
                page.click('li[data-id="counting"] > span')
                expect(page.locator("#ed-id")).to_have_text("counting")
            # alice saves first
            alice.fill("#f-description", "Count the objects of one kind.")
            alice.click("#save-node")
            expect(alice.locator("#status")).to_contain_text("now v2")
            # bob's page still shows v1: his save is refused with a conflict, nothing overwritten
            bob.fill("#f-description", "Bob's description.")
            bob.click("#save-node")
            expect(bob.locator("#status")).to_contain_text("Conflict")
            assert load(tax_file).node("counting").description == "Count the objects of one kind."
            bob.click("#reload")
            expect(bob.locator("#tax-version")).to_contain_text("v2")
            expect(bob.locator("#f-description")).to_have_value("Count the objects of one kind.")
            # bob adds a leaf under Humor Reasoning through the page; a server-side refusal shows too
            bob.click('li[data-id="humor-reasoning"] > span')
            bob.fill("#add-name", "Pun Explanation")
            bob.click("#add-child")
            expect(bob.locator('li[data-id="pun-explanation"]')).to_have_count(1)
            bob.click('li[data-id="pun-explanation"] > span')
            bob.fill("#f-weight", "-3")
            bob.click("#save-node")
            expect(bob.locator("#status")).to_contain_text("Refused")
            bob.fill("#add-main-name", "Agent Tasks")
            bob.click("#add-main")
            expect(bob.locator('li.kind-main[data-id="agent-tasks"]')).to_have_count(1)
            # label samples: see the image and the conversation, pick leaves, skip, flag
            _suggest(catalog_dir, "demo-0001", "counting")
            alice.reload()
            alice.click("#tab-label")
            expect(alice.locator("#view-taxonomy")).to_be_hidden()
            expect(alice.locator("#sample-key")).to_have_text("demo-0000")
            expect(alice.locator("#sample-conv .msg.user")).to_have_count(1)
            expect(alice.locator("#sample-conv .msg.assistant")).to_contain_text("An answer about")
            img = alice.locator("img.sample-image")
            expect(img).to_have_count(1)
            alice.wait_for_function("document.querySelector('img.sample-image').naturalWidth === 48")
            alice.check('#leaves input[value="counting"]')
            alice.check('#leaves input[value="pun-explanation"]')
            alice.click("#label-save")
            expect(alice.locator("#sample-key")).to_have_text("demo-0001")
            expect(alice.locator('#leaves input[value="counting"]')).to_be_checked()  # the tagger's suggestion
            expect(alice.locator('#leaves input[value="pun-explanation"]')).not_to_be_checked()
            alice.click("#label-skip")
            expect(alice.locator("#sample-key")).to_have_text("demo-0002")
            alice.click("#label-flag")
            expect(alice.locator("#status")).to_contain_text("needs a note")
            alice.fill("#label-note", "image does not match the question")
            alice.click("#label-flag")
            expect(alice.locator("#sample-key")).to_have_text("demo-0003")
        finally:
            browser.close()
    rows = {r["key"]: r for r in LabelStore(catalog_dir / "annotations.duckdb").latest()}
    assert rows["demo-0000"]["labels"] == ["counting", "pun-explanation"] and rows["demo-0000"]["annotator"] == "alice"
    assert rows["demo-0001"]["action"] == "skip" and rows["demo-0002"]["action"] == "flag"
    assert rows["demo-0002"]["note"] == "image does not match the question"
    assert rows["demo-0000"]["taxonomy_version"] == 4
    audit = read_audit(audit_path(tax_file))
    assert [(a["who"], a["op"]) for a in audit] == [("alice", "edit"), ("bob", "add"), ("bob", "add")]
    assert load(tax_file).counts() == {"main": 9, "secondary": 19, "leaf": 89, "labelable": 89}
