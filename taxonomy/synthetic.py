"""Synthetic data for tests and benchmarks: labelled prompts built from the taxonomy's own examples and
keywords, and small catalogs (DuckDB + pool Parquet) shaped like the engine's.

The prompts stand in for annotators' labels until real ones exist; accuracy on them is not a claim
about real user questions.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

from taxonomy.schema import Taxonomy

OPENERS = ["", "Please", "Could you", "Hey,", "Question:", "I need help:", "Quick one -", "Look at the picture."]
FILLERS = ["in this picture", "here", "in the image", "for me", "shown above", "please", "thanks", "if possible"]
SUBJECTS = ["the photo", "this screenshot", "the scan", "the figure", "this image", "the picture", "the slide"]


def labelled_prompts(tax: Taxonomy, per_node: int = 40, seed: int = 0) -> list[tuple[str, str, list[str]]]:
    """(key, text, [id]) per labelable node: its examples and keyword phrases, varied with openers,
    fillers and subjects. Deterministic for a seed."""
    rng = random.Random(seed)
    out = []
    for n in tax.labelable():
        phrases = list(n.examples) or [n.name]
        for i in range(per_node):
            base = rng.choice(phrases)
            kw = rng.sample(n.keywords, k=min(len(n.keywords), rng.randint(0, 2))) if n.keywords else []
            parts = [rng.choice(OPENERS), base if rng.random() < 0.6 else f"about {rng.choice(SUBJECTS)}:",
                     " ".join(kw), rng.choice(FILLERS) if rng.random() < 0.5 else ""]
            if rng.random() < 0.5:
                parts.insert(2, n.name.lower())
            text = " ".join(p for p in parts if p).strip()
            out.append((f"syn-{n.id}-{i:04d}", "<image>\n" + text, [n.id]))
    rng.shuffle(out)
    return out


def png(color: tuple[int, int, int], size: tuple[int, int] = (48, 32)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def write_catalog(out_dir: str | Path, samples: list[dict[str, Any]], images: dict[str, list[bytes]]) -> Path:
    """A catalog shaped like the engine's: `catalog.duckdb` with table `samples` (key, source, task,
    category, stage, modality, lang, taxonomy, json, pool_file) and one pool Parquet file (key, kind,
    json, images)."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    (out / "pool").mkdir(parents=True, exist_ok=True)
    pool_rel = "pool/part-00000.parquet"
    dumps = [json.dumps(s, sort_keys=True, separators=(",", ":")) for s in samples]
    pq.write_table(pa.table({
        "key": [s["key"] for s in samples], "kind": ["sample"] * len(samples), "json": dumps,
        "images": pa.array([images.get(s["key"], []) for s in samples], pa.list_(pa.binary()))}), out / pool_rel)
    rows = pa.table({
        "key": [s["key"] for s in samples], "source": [s["source"] for s in samples],
        "task": [s["task"] for s in samples], "category": [s["category"] for s in samples],
        "stage": pa.array([s["stage"] for s in samples], pa.list_(pa.int32())),
        "modality": ["multimodal" if s.get("images") else "text" for s in samples],
        "lang": [s.get("lang") for s in samples],
        "taxonomy": pa.array([[t["id"] for t in s.get("taxonomy", [])] for s in samples], pa.list_(pa.string())),
        "json": dumps, "pool_file": [pool_rel] * len(samples)})
    path = out / "catalog.duckdb"
    with duckdb.connect(str(path)) as con:
        con.register("rows", rows)
        con.execute("CREATE OR REPLACE TABLE samples AS SELECT * FROM rows")
    return path


def demo_catalog(out_dir: str | Path, tax: Taxonomy, n: int = 6, seed: int = 0) -> Path:
    """A few instruction samples with one image each, drawn from the labelled prompts."""
    prompts = labelled_prompts(tax, per_node=1, seed=seed)[:n]
    samples, images = [], {}
    for i, (_, text, ids) in enumerate(prompts):
        key = f"demo-{i:04d}"
        samples.append({"key": key, "source": "demo", "task": "instruct", "category": "general_instruct",
                        "stage": [3], "images": ["0.png"], "lang": "en",
                        "messages": [{"role": "user", "content": text},
                                     {"role": "assistant", "content": f"An answer about {ids[0]}."}],
                        "taxonomy": [], "scores": {}, "provenance": {"input": "demo"}})
        images[key] = [png(((37 * i) % 256, (91 * i) % 256, 160))]
    return write_catalog(out_dir, samples, images)
