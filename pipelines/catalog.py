"""The DuckDB catalog of a build: samples, selections, shards, ledger, inputs, mixture and runs.

Rebuilt from the pool after every build (written to a temp file and renamed); the `runs` table
carries over from the previous catalog so a resumed build keeps its history.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

CATALOG_NAME = "catalog.duckdb"


def previous_runs(out: Path) -> list[dict[str, Any]]:
    path = out / CATALOG_NAME
    if not path.exists():
        return []
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql("SELECT * FROM runs ORDER BY run").to_arrow_table().to_pylist()
    except duckdb.Error:
        return []
    finally:
        con.close()


def write_catalog(
    out: Path,
    pool_con: duckdb.DuckDBPyConnection,
    candidates: pa.Table,
    removed: list[dict[str, Any]],
    selections: pa.Table,
    shards: pa.Table,
    inputs: pa.Table,
    mixture: pa.Table,
    runs: list[dict[str, Any]],
) -> Path:
    """`pool_con` is the pool's connection (views sample_meta, rejections, done)."""
    final = out / CATALOG_NAME
    tmp = out / (CATALOG_NAME + ".tmp")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        removed_t = pa.Table.from_pylist(
            removed, schema=pa.schema([("input", pa.string()), ("key", pa.string()), ("operator", pa.string()),
                                       ("reason", pa.string()), ("detail", pa.string())]))
        meta = pool_con.sql("SELECT key, json, pool_file FROM sample_meta").to_arrow_table()
        build_rej = pool_con.sql("SELECT input, key, operator, reason, detail FROM rejections").to_arrow_table()
        done = pool_con.sql("SELECT input, n FROM done").to_arrow_table()
        for name, t in [("cand", candidates), ("meta", meta), ("removed_t", removed_t), ("sel", selections),
                        ("shards_t", shards), ("inputs_t", inputs), ("mix", mixture), ("build_rej", build_rej),
                        ("done_t", done)]:
            con.register(name, t)
        con.execute("""
            CREATE TABLE samples AS
            SELECT c.key, c.input, c.source, c.task, c.category, c.stage, c.modality, c.lang, c.taxonomy,
                   c.n_images, c.text_chars, c.scores, m.json, m.pool_file,
                   (r.key IS NULL) AS kept,
                   coalesce((SELECT list(DISTINCT s.stream ORDER BY s.stream) FROM sel s WHERE s.key = c.key),
                            []::VARCHAR[]) AS streams,
                   len(coalesce((SELECT list(DISTINCT s.stream) FROM sel s WHERE s.key = c.key),
                                []::VARCHAR[])) > 0 AS selected
            FROM cand c JOIN meta m USING (key) LEFT JOIN removed_t r USING (key)
            ORDER BY c.key""")
        con.execute("CREATE TABLE selections AS SELECT * FROM sel ORDER BY stream, pos")
        con.execute("CREATE TABLE shards AS SELECT * FROM shards_t ORDER BY stream, name")
        con.execute("""
            CREATE TABLE inputs AS
            SELECT i.input, i.source_op, d.n AS emitted, d.input IS NOT NULL AS done
            FROM inputs_t i LEFT JOIN done_t d USING (input) ORDER BY i.input""")
        con.execute("""
            CREATE TABLE ledger AS
            SELECT input, key, '' AS operator, 'accepted' AS status, '' AS reason, '' AS detail,
                   'build' AS phase FROM cand
            UNION ALL
            SELECT input, key, operator, 'rejected', reason, detail, 'build' FROM build_rej
            UNION ALL
            SELECT input, key, operator, 'rejected', reason, detail, 'assembly' FROM removed_t""")
        con.execute("CREATE TABLE mixture AS SELECT * FROM mix")
        runs_t = pa.Table.from_pylist([{**r, "info": json.dumps(r.get("info", {}), sort_keys=True)
                                        if not isinstance(r.get("info"), str) else r["info"]} for r in runs])
        con.register("runs_t", runs_t)
        con.execute("CREATE TABLE runs AS SELECT * FROM runs_t ORDER BY run")
    finally:
        con.close()
    os.replace(tmp, final)
    return final


def open_catalog(out: Path) -> duckdb.DuckDBPyConnection:
    path = Path(out) / CATALOG_NAME
    if not path.exists():
        raise FileNotFoundError(f"no catalog at {path}: is {out} a build output folder?")
    return duckdb.connect(str(path), read_only=True)


def stats(out: Path) -> dict[str, Any]:
    """Counts by source, task, stream, language, taxonomy and rejection reason."""
    con = open_catalog(out)
    try:
        def counts(q: str) -> dict[str, int]:
            return {str(k): int(v) for k, v in con.sql(q).fetchall()}

        return {
            "samples": con.sql("SELECT count(*) FROM samples").fetchall()[0][0],
            "kept": con.sql("SELECT count(*) FROM samples WHERE kept").fetchall()[0][0],
            "inputs": con.sql("SELECT count(*) FROM inputs").fetchall()[0][0],
            "by_source": counts("SELECT source, count(*) FROM samples GROUP BY 1 ORDER BY 1"),
            "by_task": counts("SELECT task, count(*) FROM samples GROUP BY 1 ORDER BY 1"),
            "by_category": counts("SELECT category, count(*) FROM samples GROUP BY 1 ORDER BY 1"),
            "by_stream": counts("SELECT stream, count(*) FROM selections GROUP BY 1 ORDER BY 1"),
            "by_lang": counts("SELECT coalesce(lang, 'unknown'), count(*) FROM samples GROUP BY 1 ORDER BY 1"),
            "by_taxonomy": counts("SELECT t, count(*) FROM (SELECT unnest(taxonomy) t FROM samples) "
                                  "GROUP BY 1 ORDER BY 2 DESC, 1"),
            "rejections": counts("SELECT phase || ':' || operator || ':' || reason, count(*) FROM ledger "
                                 "WHERE status = 'rejected' GROUP BY 1 ORDER BY 2 DESC, 1"),
            "shards": counts("SELECT stream, count(*) FROM shards GROUP BY 1 ORDER BY 1"),
        }
    finally:
        con.close()
