"""Read access to a build's catalog (`catalog.duckdb` + pool Parquet) for annotators, and the labels store.

Labels live in their own DuckDB file, `annotations.duckdb` beside the catalog, so that a rebuild that
replaces the catalog never loses annotators' work. `migrate` rewrites tags through the taxonomy's aliases.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from taxonomy.schema import Taxonomy

ACTIONS = ("label", "skip", "flag")


def catalog_file(path: str | Path) -> Path:
    """Accept a build output dir or the catalog file itself."""
    p = Path(path)
    return p / "catalog.duckdb" if p.is_dir() else p


def _tag_ids(value: Any) -> list[str]:
    """Tag ids from a catalog `taxonomy` cell: a list of ids, a list of {"id": ...}, or JSON text of either."""
    if value is None:
        return []
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    return [t["id"] if isinstance(t, dict) else str(t) for t in value]


class Catalog:
    """A read-only view of `catalog.duckdb`: sample metadata, conversations and images by key."""

    def __init__(self, path: str | Path):
        self.path = catalog_file(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no catalog at {self.path}")
        self.root = self.path.parent

    def _con(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.path), read_only=True)

    def keys(self, category: str | None = None) -> list[str]:
        with self._con() as con:
            if category:
                rows = con.execute("SELECT key FROM samples WHERE category = ? ORDER BY key", [category])
            else:
                rows = con.execute("SELECT key FROM samples ORDER BY key")
            return [r[0] for r in rows.fetchall()]

    def next_key(self, after: str = "", skip: set[str] | None = None, category: str | None = None) -> str | None:
        """The first key after `after` (key order) that is not in `skip`: one query, any catalog size."""
        import pyarrow as pa

        with self._con() as con:
            con.register("skip_t", pa.table({"key": pa.array(sorted(skip or ()), pa.string())}))
            q = "SELECT min(key) FROM samples WHERE key > ? AND key NOT IN (SELECT key FROM skip_t)"
            args: list[Any] = [after]
            if category:
                q += " AND category = ?"
                args.append(category)
            return con.execute(q, args).fetchone()[0]

    def sample(self, key: str) -> dict[str, Any] | None:
        with self._con() as con:
            row = con.execute("SELECT json, pool_file FROM samples WHERE key = ? LIMIT 1", [key]).fetchone()
        if row is None:
            return None
        d = json.loads(row[0])
        d["pool_file"] = row[1]
        return d

    def images(self, key: str) -> list[bytes]:
        with self._con() as con:
            row = con.execute("SELECT pool_file FROM samples WHERE key = ? LIMIT 1", [key]).fetchone()
        if row is None:
            return []
        t = pq.read_table(self.pool_path(row[0]), columns=["key", "images"], filters=[("key", "=", key)])
        return list(t.column("images")[0].as_py() or []) if t.num_rows else []

    def pool_path(self, pool_file: str) -> Path:
        """The engine records pool files as it opened them (absolute, or relative to the build's working
        directory); fall back to the part under `pool/` beside this catalog when the build moved."""
        f = Path(pool_file)
        if f.exists():
            return f
        if "pool" in f.parts:
            moved = self.root.joinpath(*f.parts[len(f.parts) - 1 - f.parts[::-1].index("pool"):])
            if moved.exists():
                return moved
        return self.root / f

    def tag_counts(self) -> Counter[str]:
        with self._con() as con:
            cols = {r[0] for r in con.execute("DESCRIBE samples").fetchall()}
            # samples removed in assembly (dedup, balancing) stay in the catalog with kept = false
            where = " WHERE kept" if "kept" in cols else ""
            rows = con.execute("SELECT taxonomy FROM samples" + where).fetchall()
        c: Counter[str] = Counter()
        for (v,) in rows:
            c.update(_tag_ids(v))
        return c


class LabelStore:
    """Annotators' decisions: table `labels(key, annotator, action, labels, note, taxonomy_version, time)`.
    Every decision is a new row; the latest row per key is the current label. One connection per call,
    so the CLI (train-tagger) can read while the app is running."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        with self._lock, duckdb.connect(str(self.path)) as con:
            con.execute("""CREATE TABLE IF NOT EXISTS labels (
                key VARCHAR, annotator VARCHAR, action VARCHAR, labels VARCHAR[], note VARCHAR,
                taxonomy_version INTEGER, time TIMESTAMP)""")

    def add(self, key: str, annotator: str, action: str, labels: list[str], note: str = "",
            taxonomy_version: int = 0) -> None:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
        with self._lock, duckdb.connect(str(self.path)) as con:
            con.execute("INSERT INTO labels VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [key, annotator, action, labels, note, taxonomy_version,
                         time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())])

    def latest(self) -> list[dict[str, Any]]:
        """The current decision per key (latest row wins), ordered by key."""
        if not self.path.exists():
            return []
        with self._lock, duckdb.connect(str(self.path), read_only=True) as con:
            rows = con.execute("""SELECT key, annotator, action, labels, note, taxonomy_version FROM (
                SELECT *, row_number() OVER (PARTITION BY key ORDER BY time DESC, rowid DESC) rn FROM labels)
                WHERE rn = 1 ORDER BY key""").fetchall()
        names = ("key", "annotator", "action", "labels", "note", "taxonomy_version")
        return [dict(zip(names, r)) for r in rows]

    def current(self, key: str) -> dict[str, Any] | None:
        """The latest decision on one key."""
        with self._lock, duckdb.connect(str(self.path), read_only=True) as con:
            row = con.execute("SELECT key, annotator, action, labels, note, taxonomy_version FROM labels "
                              "WHERE key = ? ORDER BY time DESC, rowid DESC LIMIT 1", [key]).fetchone()
        names = ("key", "annotator", "action", "labels", "note", "taxonomy_version")
        return dict(zip(names, row)) if row else None

    def decided(self) -> set[str]:
        return {r["key"] for r in self.latest()}

    def migrate(self, tax: Taxonomy) -> dict[str, int]:
        """Rewrite label ids through aliases; drop ids that are retired without replacement."""
        changed = dropped = 0
        with self._lock, duckdb.connect(str(self.path)) as con:
            rows = con.execute("SELECT rowid, labels FROM labels").fetchall()
            for rowid, labels in rows:
                new = [r for r in (tax.resolve(x) for x in labels or []) if r]
                if new != list(labels or []):
                    changed += 1
                    dropped += len(labels) - len(new)
                    con.execute("UPDATE labels SET labels = ? WHERE rowid = ?", [new, rowid])
        return {"rows_changed": changed, "ids_dropped": dropped}


def migrate_catalog(path: str | Path, tax: Taxonomy) -> dict[str, Any]:
    """Rewrite `samples.taxonomy` and the taxonomy in `samples.json` through aliases (retired ids are
    dropped), then the labels store beside it. Returns counts of what changed."""
    cat = catalog_file(path)
    rewritten = dropped = 0
    unknown: Counter[str] = Counter()
    with duckdb.connect(str(cat)) as con:
        rows = con.execute("SELECT rowid, taxonomy, json FROM samples").fetchall()
        is_text = con.execute("SELECT data_type FROM information_schema.columns WHERE table_name = 'samples' "
                              "AND column_name = 'taxonomy'").fetchone()[0].upper() in ("VARCHAR", "JSON")
        con.execute("BEGIN")
        for rowid, col, js in rows:
            d = json.loads(js)
            tags, new_tags = d.get("taxonomy", []), []
            for t in tags:
                tid = t["id"] if isinstance(t, dict) else str(t)
                r = tax.resolve(tid)
                if r is None:
                    unknown[tid] += 1
                    continue
                new_tags.append({**t, "id": r} if isinstance(t, dict) else r)
            ids = _tag_ids(col)
            new_ids = [r for r in (tax.resolve(x) for x in ids) if r]
            if new_tags == tags and new_ids == ids:
                continue
            rewritten += 1
            dropped += len(tags) - len(new_tags)
            d["taxonomy"] = new_tags
            new_js = json.dumps(d, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
            value: Any = json.dumps(new_ids) if is_text else new_ids
            con.execute("UPDATE samples SET taxonomy = ?, json = ? WHERE rowid = ?", [value, new_js, rowid])
        con.execute("COMMIT")
    out: dict[str, Any] = {"samples_rewritten": rewritten, "tags_dropped": dropped,
                           "dropped_ids": dict(unknown)}
    ann = cat.parent / "annotations.duckdb"
    if ann.exists():
        out["labels"] = LabelStore(ann).migrate(tax)
    return out
