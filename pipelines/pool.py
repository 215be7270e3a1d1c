"""The sample pool: Parquet files written once by a build, read by every assembly.

Samples go to `pool/source=<s>/task=<t>/part-rNNN-NNNNNN.parquet`; rejections and per-input `done`
markers go to `pool/_ledger/`. Each flush writes temp files and renames them, ledger last, so a
killed build leaves only whole parts, and an input counts as finished only once its marker landed.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from operators.base import PoolReader
from operators.sample import ROW_SCHEMA, Sample

log = logging.getLogger(__name__)

CANDIDATE_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("input", pa.string()),
        ("source", pa.string()),
        ("task", pa.string()),
        ("category", pa.string()),
        ("stage", pa.list_(pa.int32())),
        ("modality", pa.string()),
        ("lang", pa.string()),
        ("taxonomy", pa.list_(pa.string())),
        ("n_images", pa.int32()),
        ("text_chars", pa.int64()),
        ("scores", pa.string()),
        ("repeat", pa.int32()),
    ]
)

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _part_value(v: str) -> str:
    return _SAFE.sub("_", v) or "_"


class PoolWriter:
    """Buffers rows from the build and flushes them as whole Parquet parts."""

    def __init__(self, root: Path, run: int, flush_rows: int = 2000, flush_bytes: int = 64 << 20):
        self.root = root
        self.run = run
        self.flush_rows = flush_rows
        self.flush_bytes = flush_bytes
        self._buf: list[pa.Table] = []
        self._rows = 0
        self._bytes = 0
        self._seq = 0
        root.mkdir(parents=True, exist_ok=True)

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._buf.append(table)
        self._rows += table.num_rows
        self._bytes += table.nbytes
        if self._rows >= self.flush_rows or self._bytes >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        if not self._buf:
            return
        table = pa.concat_tables(self._buf)
        self._buf, self._rows, self._bytes = [], 0, 0
        name = f"part-r{self.run:03d}-{self._seq:06d}.parquet"
        self._seq += 1
        kinds = table.column("kind").to_pylist()
        samples_idx = [i for i, k in enumerate(kinds) if k == "sample"]
        other_idx = [i for i, k in enumerate(kinds) if k in ("rejection", "done")]
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        if samples_idx:
            js = table.column("json").to_pylist()
            for i in samples_idx:
                d = json.loads(js[i])
                groups[(d["source"], d["task"])].append(i)
        pending: list[tuple[Path, Path]] = []
        for (source, task), idx in sorted(groups.items()):
            folder = self.root / f"source={_part_value(source)}" / f"task={_part_value(task)}"
            pending.append(_write_tmp(folder / name, table.take(idx)))
        if other_idx:
            pending.append(_write_tmp(self.root / "_ledger" / name, table.take(other_idx)))
        for tmp, final in pending:  # the ledger part (with `done` markers) is renamed last
            os.replace(tmp, final)

    def close(self) -> None:
        self.flush()


def _write_tmp(final: Path, table: pa.Table) -> tuple[Path, Path]:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + ".tmp")
    # images are PNG/JPEG already: compressing them again costs CPU and saves nothing
    codecs = {name: ("none" if name == "images" else "zstd") for name in ROW_SCHEMA.names}
    pq.write_table(table.cast(ROW_SCHEMA), tmp, compression=codecs)
    return tmp, final


def pool_files(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.parquet") if "_ledger" not in p.parts)


def ledger_files(root: Path) -> list[str]:
    return sorted(str(p) for p in (root / "_ledger").glob("*.parquet"))


def next_run_number(root: Path) -> int:
    runs = [int(m.group(1)) for p in root.rglob("part-r*.parquet") if (m := re.match(r"part-r(\d+)-", p.name))]
    return max(runs, default=0) + 1


def _sql_list(files: list[str]) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


class Pool(PoolReader):
    """Read side of the pool: complete inputs only, one row per key (a resumed input may repeat)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.files = pool_files(self.root)
        self.ledger = ledger_files(self.root)
        self.con = duckdb.connect()
        self._define_views()

    def _define_views(self) -> None:
        empty = "SELECT * FROM (SELECT NULL::VARCHAR kind, NULL::VARCHAR key, NULL::VARCHAR input, " \
                "NULL::VARCHAR operator, NULL::VARCHAR reason, NULL::VARCHAR detail, NULL::VARCHAR json, " \
                "NULL::BLOB[] images) WHERE false"
        led = f"SELECT * FROM read_parquet({_sql_list(self.ledger)}, union_by_name=false)" if self.ledger else empty
        self.con.execute(f"CREATE OR REPLACE VIEW ledger_raw AS {led}")
        self.con.execute(
            "CREATE OR REPLACE VIEW done AS SELECT input, max(CAST(detail AS BIGINT)) AS n FROM ledger_raw "
            "WHERE kind = 'done' GROUP BY input"
        )
        if self.files:
            src = f"SELECT *, filename AS pool_file FROM read_parquet({_sql_list(self.files)}, filename=true)"
        else:
            src = empty.replace("NULL::BLOB[] images)", "NULL::BLOB[] images, NULL::VARCHAR pool_file)")
        # a resumed input may have left a partial copy: keep complete inputs, first copy of each key
        self.con.execute(
            f"CREATE OR REPLACE VIEW samples_raw AS SELECT * FROM ({src}) WHERE input IN (SELECT input FROM done)"
        )
        self.con.execute(
            "CREATE OR REPLACE VIEW sample_meta AS SELECT key, any_value(input ORDER BY pool_file) AS input, "
            "any_value(json ORDER BY pool_file) AS json, any_value(pool_file ORDER BY pool_file) AS pool_file "
            "FROM samples_raw GROUP BY key"
        )
        # two inputs that yield the same key: the first keeps it, the other is recorded, not lost
        self.con.execute(
            "CREATE OR REPLACE VIEW rejections AS SELECT DISTINCT input, key, operator, reason, detail "
            "FROM ledger_raw WHERE kind = 'rejection' AND input IN (SELECT input FROM done) "
            "UNION SELECT DISTINCT r.input, r.key, 'pool', 'duplicate_key', 'duplicate_of=' || m.input "
            "FROM samples_raw r JOIN sample_meta m USING (key) WHERE r.input <> m.input"
        )

    def done_inputs(self) -> set[str]:
        return {r[0] for r in self.con.sql("SELECT input FROM done").fetchall()}

    def candidates(self) -> pa.Table:
        """One row per sample with the catalog columns used by assembly steps."""
        rows = self.con.sql("SELECT key, input, json FROM sample_meta ORDER BY key").fetchall()
        cols: dict[str, list] = {n: [] for n in CANDIDATE_SCHEMA.names}
        for key, inp, js in rows:
            d = json.loads(js)
            text = d.get("text") or ""
            if d.get("messages"):
                text = "".join(m.get("content", "") for m in d["messages"])
            cols["key"].append(key)
            cols["input"].append(inp)
            cols["source"].append(d["source"])
            cols["task"].append(d["task"])
            cols["category"].append(d["category"])
            cols["stage"].append([int(s) for s in d["stage"]])
            cols["modality"].append("multimodal" if d.get("images") else "text")
            cols["lang"].append(d.get("lang"))
            cols["taxonomy"].append([t["id"] if isinstance(t, dict) else str(t) for t in d.get("taxonomy", [])])
            cols["n_images"].append(len(d.get("images", [])))
            cols["text_chars"].append(len(text))
            cols["scores"].append(json.dumps(d.get("scores", {}), sort_keys=True))
            cols["repeat"].append(1)
        return pa.table(cols, schema=CANDIDATE_SCHEMA)

    def iter_samples(self, keys: set[str] | None = None, with_images: bool = True) -> Iterator[Sample]:
        cols = "key, input, json" + (", images" if with_images else "")
        q = (f"SELECT {cols} FROM (SELECT *, row_number() OVER (PARTITION BY key ORDER BY pool_file) rn "
             f"FROM samples_raw) WHERE rn = 1 ORDER BY key")
        reader = self.con.sql(q).to_arrow_reader(256)
        for batch in reader:
            d = batch.to_pydict()
            for i, key in enumerate(d["key"]):
                if keys is not None and key not in keys:
                    continue
                imgs = d["images"][i] if with_images else []
                yield Sample.from_json(json.loads(d["json"][i]), imgs or [], d["input"][i])
