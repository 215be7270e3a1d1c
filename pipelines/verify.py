"""`dsvl-data verify`: prove a build's ledger balances and its shards match manifests and catalog.

Returns a list of problems (empty when the build is sound); each names what is wrong and where.
"""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from pathlib import Path

from pipelines.catalog import open_catalog
from operators.sample import file_sha256


def verify(out: Path) -> list[str]:
    out = Path(out)
    problems: list[str] = []
    con = open_catalog(out)
    try:
        def rows(q: str) -> list[tuple]:
            return con.sql(q).fetchall()

        for (inp,) in rows("SELECT input FROM inputs WHERE NOT done ORDER BY input LIMIT 20"):
            problems.append(f"ledger: input {inp} never finished (build interrupted? run build --resume)")
        for (inp,) in rows("SELECT input FROM inputs WHERE done AND input NOT IN (SELECT input FROM ledger) "
                           "ORDER BY input LIMIT 20"):
            problems.append(f"ledger: input {inp} has neither accepted samples nor a rejection")
        for (inp,) in rows("SELECT DISTINCT input FROM ledger WHERE input NOT IN (SELECT input FROM inputs) "
                           "LIMIT 20"):
            problems.append(f"ledger: entry for unknown input {inp}")
        for key, n in rows("SELECT key, count(*) FROM samples GROUP BY key HAVING count(*) > 1 LIMIT 20"):
            problems.append(f"catalog: sample {key} listed {n} times")
        for (key,) in rows("SELECT a.key FROM ledger a JOIN ledger r ON a.key = r.key AND a.input = r.input "
                           "WHERE a.phase = 'build' AND a.status = 'accepted' AND r.phase = 'build' "
                           "AND r.status = 'rejected' LIMIT 20"):
            problems.append(f"ledger: sample {key} both accepted and rejected in the build")
        for (key,) in rows("SELECT key FROM samples WHERE NOT kept AND selected LIMIT 20"):
            problems.append(f"assembly: removed sample {key} was still selected into a stream")
        for (key,) in rows("SELECT key FROM ledger WHERE phase = 'assembly' AND key NOT IN "
                           "(SELECT key FROM samples WHERE NOT kept) LIMIT 20"):
            problems.append(f"catalog: {key} removed in assembly but not listed as a removed sample")
        accepted = rows("SELECT count(*) FROM ledger WHERE phase = 'build' AND status = 'accepted'")[0][0]
        n_samples = rows("SELECT count(*) FROM samples")[0][0]
        if accepted != n_samples:
            problems.append(f"ledger: {accepted} accepted samples but {n_samples} in the catalog")
        cat_shards = {(s, n): (c, b, h) for s, n, c, b, h in
                      rows("SELECT stream, name, count, bytes, sha256 FROM shards")}
        selected = Counter((s, sh) for s, sh in rows("SELECT stream, shard FROM selections"))
        members: dict[tuple[str, str], set[str]] = {}
        for s, sh, mk in rows("SELECT stream, shard, member_key FROM selections"):
            members.setdefault((s, sh), set()).add(mk)
    finally:
        con.close()
    problems.extend(_check_shards(out / "shards", cat_shards, selected, members))
    return problems


def _check_shards(root: Path, cat_shards: dict, selected: Counter, members: dict) -> list[str]:
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    streams = sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []
    for folder in streams:
        mpath = folder / "manifest.json"
        if not mpath.exists():
            problems.append(f"shards: {folder.name} has no manifest.json")
            continue
        manifest = json.loads(mpath.read_text())
        listed = {s["name"] for s in manifest["shards"]}
        for stray in sorted(p.name for p in folder.glob("*.tar") if p.name not in listed):
            problems.append(f"shards: {folder.name}/{stray} is not in the manifest")
        if manifest["count"] != sum(s["count"] for s in manifest["shards"]):
            problems.append(f"shards: {folder.name} manifest count differs from the sum of its shards")
        for s in manifest["shards"]:
            path = folder / s["name"]
            ident = (folder.name, s["name"])
            seen.add(ident)
            if not path.exists():
                problems.append(f"shards: {path} listed in the manifest but missing")
                continue
            if path.stat().st_size != s["bytes"]:
                problems.append(f"shards: {path} is {path.stat().st_size} bytes, manifest says {s['bytes']}")
            if file_sha256(path) != s["sha256"]:
                problems.append(f"shards: {path} sha256 differs from the manifest")
            if cat_shards.get(ident) != (s["count"], s["bytes"], s["sha256"]):
                problems.append(f"catalog: shard {ident[0]}/{ident[1]} differs from the manifest")
            if selected.get(ident, 0) != s["count"]:
                problems.append(f"catalog: {selected.get(ident, 0)} selections in {s['name']}, manifest says {s['count']}")
            try:
                with tarfile.open(path) as tar:
                    keys = {m.name.split(".", 1)[0] for m in tar.getmembers()}
            except tarfile.TarError as e:
                problems.append(f"shards: {path} is not a readable tar: {e}")
                continue
            if keys != members.get(ident, set()):
                problems.append(f"shards: sample keys in {path} differ from the catalog's selections")
    for ident in sorted(set(cat_shards) - seen):
        problems.append(f"catalog: shard {ident[0]}/{ident[1]} has no manifest entry")
    return problems
