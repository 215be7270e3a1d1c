"""Edits of the taxonomy: add, rename, move, merge, retire, edit; diff of two versions; the audited,
version-checked read-modify-write used by the CLI and the annotators' app.

Each edit returns a new validated Taxonomy with `version + 1` and a changelog line. Renames of ids and
merges leave aliases (old id -> live id), so old tags migrate; no id is ever reused.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from taxonomy.schema import Taxonomy, VersionConflict, load, locked, save, validation_message

log = logging.getLogger(__name__)

EDITABLE = ("name", "description", "examples", "keywords", "tasks", "weight")


class EditError(ValueError):
    """An edit that the taxonomy rules refuse (unknown node, reused id, wrong kind of parent...)."""


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _commit(tax: Taxonomy, data: dict[str, Any], change: str, by: str) -> Taxonomy:
    data["version"] = tax.version + 1
    data["changelog"] = list(data["changelog"]) + [{"version": tax.version + 1, "change": change, "by": by}]
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as e:
        raise EditError(validation_message(e)) from None


def _live(tax: Taxonomy, id: str) -> dict[str, Any]:
    try:
        n = tax.node(id)
    except KeyError:
        raise EditError(f"no node {id!r}") from None
    if n.retired:
        raise EditError(f"node {id!r} is retired")
    return n.model_dump()


def _replace(data: dict[str, Any], node: dict[str, Any]) -> None:
    data["nodes"] = [node if n["id"] == node["id"] else n for n in data["nodes"]]


def add(tax: Taxonomy, name: str, parent: str | None = None, id: str | None = None, kind: str | None = None,
        description: str = "", examples: list[str] | None = None, keywords: list[str] | None = None,
        weight: float | None = None, tasks: list[str] | None = None, by: str = "") -> Taxonomy:
    if parent is not None:
        _live(tax, parent)
    kind = kind or ("leaf" if parent else "main")
    reserved = tax.reserved_ids()
    if id is None:
        id = slugify(name)
        if id in reserved and parent:  # a repeated name gets its parent's id as prefix
            id = f"{parent}-{id}"
    if not id:
        raise EditError(f"cannot make an id from name {name!r}")
    if id in reserved:
        raise EditError(f"id {id!r} is already used or was used before (ids are never reused)")
    node = {"id": id, "name": name, "kind": kind, "parent": parent, "description": description,
            "examples": examples or [], "keywords": keywords or [], "tasks": tasks or [],
            "weight": (1.0 if kind != "main" else 0.0) if weight is None else weight}
    data = tax.model_dump()
    # insert after the parent's last descendant so the file keeps tree order
    ids = [n["id"] for n in data["nodes"]]
    at = len(ids)
    if parent is not None:
        sub = {parent}
        at = ids.index(parent) + 1
        while at < len(ids) and data["nodes"][at]["parent"] in sub:
            sub.add(ids[at])
            at += 1
    data["nodes"].insert(at, node)
    return _commit(tax, data, f"add {kind} {id!r} ({name}) under {parent or '(root)'}", by)


def rename(tax: Taxonomy, id: str, name: str | None = None, new_id: str | None = None, by: str = "") -> Taxonomy:
    """Change a node's display name and/or its id. A new id leaves `old -> new` in aliases."""
    node = _live(tax, id)
    if name is None and new_id is None:
        raise EditError("rename needs a new name or a new id")
    data = tax.model_dump()
    parts = []
    if name is not None:
        parts.append(f"name {node['name']!r} -> {name!r}")
        node["name"] = name
    if new_id is not None and new_id != id:
        if new_id in tax.reserved_ids():
            raise EditError(f"id {new_id!r} is already used or was used before (ids are never reused)")
        node["id"] = new_id
        data["nodes"] = [node if n["id"] == id else n for n in data["nodes"]]
        for n in data["nodes"]:
            if n["parent"] == id:
                n["parent"] = new_id
        data["aliases"] = {k: (new_id if v == id else v) for k, v in data["aliases"].items()}
        data["aliases"][id] = new_id
        parts.append(f"id {id!r} -> {new_id!r}")
    else:
        _replace(data, node)
    return _commit(tax, data, f"rename {id!r}: " + ", ".join(parts), by)


def move(tax: Taxonomy, id: str, parent: str, by: str = "") -> Taxonomy:
    node = _live(tax, id)
    _live(tax, parent)
    if parent in tax.path(id):
        raise EditError(f"cannot move {id!r} under itself")
    old = node["parent"]
    node["parent"] = parent
    data = tax.model_dump()
    _replace(data, node)
    return _commit(tax, data, f"move {id!r} from {old!r} to {parent!r}", by)


def merge(tax: Taxonomy, src: str, dst: str, by: str = "") -> Taxonomy:
    """Fold `src` into `dst` (same kind): children move to `dst`, keywords/examples/tasks and weight
    are combined, `src` disappears and leaves the alias `src -> dst`."""
    s, d = _live(tax, src), _live(tax, dst)
    if src == dst:
        raise EditError("cannot merge a node into itself")
    if s["kind"] != d["kind"]:
        raise EditError(f"cannot merge a {s['kind']} ({src!r}) into a {d['kind']} ({dst!r})")
    for k in ("examples", "keywords", "tasks"):
        d[k] = d[k] + [x for x in s[k] if x not in d[k]]
    d["weight"] = d["weight"] + s["weight"]
    data = tax.model_dump()
    _replace(data, d)
    data["nodes"] = [n for n in data["nodes"] if n["id"] != src]
    for n in data["nodes"]:
        if n["parent"] == src:
            n["parent"] = dst
    data["aliases"] = {k: (dst if v == src else v) for k, v in data["aliases"].items()}
    data["aliases"][src] = dst
    return _commit(tax, data, f"merge {src!r} into {dst!r}", by)


def retire(tax: Taxonomy, id: str, by: str = "") -> Taxonomy:
    """Mark a node retired (kept in the file so its id stays reserved). Its tags are dropped on migrate;
    use `merge` to send them somewhere instead."""
    node = _live(tax, id)
    if tax.children(id):
        raise EditError(f"{id!r} has live children; retire or move them first")
    if any(v == id for v in tax.aliases.values()):
        raise EditError(f"aliases point to {id!r}; merge it into another node instead of retiring it")
    node["retired"] = True
    data = tax.model_dump()
    _replace(data, node)
    return _commit(tax, data, f"retire {id!r}", by)


def edit(tax: Taxonomy, id: str, by: str = "", **fields: Any) -> Taxonomy:
    """Change descriptive fields (name, description, examples, keywords, tasks, weight)."""
    bad = set(fields) - set(EDITABLE)
    if bad:
        raise EditError(f"cannot edit {sorted(bad)}; editable fields: {', '.join(EDITABLE)}")
    node = _live(tax, id)
    changed = [k for k, v in fields.items() if v is not None and node[k] != v]
    if not changed:
        raise EditError("nothing to change")
    for k in changed:
        node[k] = fields[k]
    data = tax.model_dump()
    _replace(data, node)
    return _commit(tax, data, f"edit {id!r}: {', '.join(changed)}", by)


OPS: dict[str, Callable[..., Taxonomy]] = {
    "add": add, "rename": rename, "move": move, "merge": merge, "retire": retire, "edit": edit}


def diff(a: Taxonomy, b: Taxonomy) -> dict[str, Any]:
    """What changed from `a` to `b`: added, removed/retired, renamed (through aliases), moved, edited."""
    la = {n.id: n for n in a.live()}
    lb = {n.id: n for n in b.live()}
    gone = {i: b.resolve(i) for i in la if i not in lb and b.resolve(i)}
    renamed = {i: j for i, j in gone.items() if j not in la}
    merged = {i: j for i, j in gone.items() if j in la}
    out: dict[str, Any] = {
        "version": [a.version, b.version],
        "added": sorted(i for i in lb if i not in la and i not in renamed.values()),
        "retired": sorted(i for i in la if i not in lb and i not in gone),
        "renamed": dict(sorted(renamed.items())),
        "merged": dict(sorted(merged.items())),
        "moved": {}, "changed": {},
    }
    for i, na in la.items():
        nb = lb.get(renamed.get(i, i))
        if nb is None:
            continue
        pa = b.resolve(na.parent) if na.parent else None
        if pa != nb.parent:
            out["moved"][i] = [na.parent, nb.parent]
        fields = [k for k in EDITABLE if getattr(na, k) != getattr(nb, k)]
        if fields:
            out["changed"][i] = fields
    return out


# --- audited file edits --------------------------------------------------------------------------

def audit_path(tax_path: str | Path) -> Path:
    return Path(str(tax_path) + ".audit.jsonl")


def apply_to_file(path: str | Path, op: str, args: dict[str, Any], who: str,
                  expected_version: int | None = None, audit: str | Path | None = None) -> Taxonomy:
    """Load, edit, validate and save atomically under a lock; refuse with VersionConflict when the file
    moved past `expected_version`; append who/what/when to the audit log (JSON lines)."""
    if op not in OPS:
        raise EditError(f"unknown edit {op!r}; edits: {', '.join(OPS)}")
    with locked(path):
        tax = load(path)
        if expected_version is not None and tax.version != expected_version:
            raise VersionConflict(expected_version, tax.version)
        try:
            new = OPS[op](tax, by=who, **args)
        except (TypeError, AttributeError) as e:  # wrong argument names or types from a client
            raise EditError(f"bad arguments for {op}: {e}") from None
        save(new, path, expected_version=tax.version)
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "who": who, "op": op,
                 "args": args, "from_version": tax.version, "to_version": new.version,
                 "change": new.changelog[-1].change}
        with open(audit or audit_path(path), "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
    log.info("taxonomy %s v%d -> v%d by %s: %s", path, tax.version, new.version, who, entry["change"])
    return new


def read_audit(path: str | Path, limit: int = 100) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        return []
    lines = p.read_text(encoding="utf-8").splitlines()[-limit:]
    return [json.loads(x) for x in lines if x.strip()]
