"""The annotators' web app (FastAPI): browse and edit the taxonomy, label samples from a catalog.

Every edit is validated server-side and written atomically with a version check (the second of two
concurrent editors gets 409); an audit log records who changed what and when. Loopback unless a token.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from taxonomy.catalog import ACTIONS, Catalog, LabelStore, catalog_file
from taxonomy.ops import OPS, EditError, apply_to_file, audit_path, read_audit
from taxonomy.schema import VersionConflict, load

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
WHO = r"^[\w .@-]{1,64}$"
MEDIA = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not token:
        raise ValueError(f"binding to {host} exposes the app beyond this machine: give --token")


class EditRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op: Literal["add", "rename", "move", "merge", "retire", "edit"]
    args: dict[str, Any]
    version: int = Field(description="the taxonomy version the editor was looking at")
    who: str = Field(pattern=WHO)


class LabelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["label", "skip", "flag"]
    labels: list[str] = Field(default_factory=list, max_length=20)
    note: str = Field("", max_length=2000)
    who: str = Field(pattern=WHO)


def create_app(taxonomy_path: str | Path, catalog: str | Path | None = None,
               annotations: str | Path | None = None, token: str | None = None,
               audit: str | Path | None = None) -> FastAPI:
    tax_path = Path(taxonomy_path)
    load(tax_path)  # fail at start, not on the first request, when the file is invalid
    audit_file = Path(audit) if audit else audit_path(tax_path)
    cat = Catalog(catalog) if catalog else None
    store = None
    if cat is not None:
        store = LabelStore(annotations or catalog_file(catalog).parent / "annotations.duckdb")  # type: ignore[arg-type]
    app = FastAPI(title="dsvl-data taxonomy", docs_url=None, redoc_url=None)
    if not token:
        # Without a token the app trusts loopback only; checking Host also stops DNS-rebinding pages
        # (a web site whose name resolves to 127.0.0.1) from driving the API from a browser.
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"])

    def auth(request: Request) -> None:
        if not token:
            return
        got = request.headers.get("x-token") or request.query_params.get("token") or ""
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            got = got or bearer[7:]
        if not hmac.compare_digest(got.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong token")

    def need_catalog() -> tuple[Catalog, LabelStore]:
        if cat is None or store is None:
            raise HTTPException(404, "no catalog: start the app with --catalog")
        return cat, store

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/taxonomy", dependencies=[Depends(auth)])
    def get_taxonomy() -> dict[str, Any]:
        tax = load(tax_path)
        labelable = {n.id for n in tax.labelable()}
        nodes = [{**n.model_dump(), "labelable": n.id in labelable, "main": tax.main_of(n.id)}
                 for n in tax.live()]
        return {"name": tax.name, "version": tax.version, "counts": tax.counts(), "nodes": nodes,
                "aliases": tax.aliases, "changelog": [c.model_dump() for c in tax.changelog[-20:]],
                "ops": list(OPS), "has_catalog": cat is not None}

    @app.post("/api/edit", dependencies=[Depends(auth)])
    def post_edit(req: EditRequest) -> JSONResponse:
        try:
            new = apply_to_file(tax_path, req.op, req.args, req.who, expected_version=req.version, audit=audit_file)
        except VersionConflict as e:
            return JSONResponse({"detail": str(e), "current": e.current}, status_code=409)
        except (EditError, ValueError) as e:
            return JSONResponse({"detail": str(e)}, status_code=422)
        return JSONResponse({"version": new.version, "change": new.changelog[-1].change})

    @app.get("/api/audit", dependencies=[Depends(auth)])
    def get_audit(limit: int = 100) -> list[dict[str, Any]]:
        return read_audit(audit_file, max(1, min(limit, 1000)))

    @app.get("/api/samples/next", dependencies=[Depends(auth)])
    def next_sample(after: str = "", category: str = "") -> dict[str, Any]:
        c, s = need_catalog()
        return {"key": c.next_key(after, s.decided(), category or None)}

    @app.get("/api/samples/{key}", dependencies=[Depends(auth)])
    def get_sample(key: str) -> dict[str, Any]:
        c, s = need_catalog()
        d = c.sample(key)
        if d is None:
            raise HTTPException(404, f"no sample {key!r}")
        current = s.current(key)
        return {"key": key, "source": d.get("source"), "task": d.get("task"), "category": d.get("category"),
                "messages": d.get("messages"), "text": d.get("text"), "images": d.get("images", []),
                "taxonomy": d.get("taxonomy", []), "label": current}

    @app.get("/api/samples/{key}/image/{i}", dependencies=[Depends(auth)])
    def get_image(key: str, i: int) -> Response:
        c, _ = need_catalog()
        d = c.sample(key)
        imgs = c.images(key) if d else []
        if not 0 <= i < len(imgs):
            raise HTTPException(404, f"sample {key!r} has no image {i}")
        ext = (d or {}).get("images", [f"{i}.png"])[i].rsplit(".", 1)[-1].lower()
        return Response(imgs[i], media_type=MEDIA.get(ext, "application/octet-stream"),
                        headers={"X-Content-Type-Options": "nosniff"})

    @app.post("/api/samples/{key}/label", dependencies=[Depends(auth)])
    def post_label(key: str, req: LabelRequest) -> dict[str, Any]:
        c, s = need_catalog()
        if c.sample(key) is None:
            raise HTTPException(404, f"no sample {key!r}")
        tax = load(tax_path)
        labelable = {n.id for n in tax.labelable()}
        bad = [x for x in req.labels if x not in labelable]
        if bad:
            raise HTTPException(422, f"not labelable categories: {', '.join(bad)}")
        if req.action == "label" and not req.labels:
            raise HTTPException(422, "pick at least one category, or skip / flag")
        if req.action == "flag" and not req.note.strip():
            raise HTTPException(422, "a flag needs a note saying what is wrong")
        s.add(key, req.who, req.action, list(dict.fromkeys(req.labels)), req.note, tax.version)
        log.info("label %s by %s: %s %s", key, req.who, req.action, req.labels)
        return {"ok": True, "key": key, "action": req.action}

    @app.get("/api/labels", dependencies=[Depends(auth)])
    def get_labels() -> dict[str, Any]:
        _, s = need_catalog()
        rows = s.latest()
        return {"n": len(rows), "by_action": {a: sum(r["action"] == a for r in rows) for a in ACTIONS},
                "rows": rows[-200:]}

    return app
