"""Read samples back for people: from a shard (.tar), a pool Parquet file, or a build folder."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from operators.sample import Sample


def iter_shard(path: Path) -> Iterator[tuple[str, dict, dict[str, bytes]]]:
    """(key, sample JSON, {member suffix: bytes}) per sample, in shard order."""
    current: str | None = None
    members: dict[str, bytes] = {}
    with tarfile.open(path) as tar:
        for m in tar:
            if not m.isfile():
                continue
            key, suffix = m.name.split(".", 1)
            if current is not None and key != current:
                yield current, json.loads(members.pop("json")), members
                members = {}
            current = key
            f = tar.extractfile(m)
            members[suffix] = f.read() if f else b""
    if current is not None:
        yield current, json.loads(members.pop("json")), members


def iter_any(path: Path) -> Iterator[tuple[str, dict, dict[str, bytes]]]:
    path = Path(path)
    if path.is_dir():
        from pipelines.pool import Pool

        for s in Pool(path / "pool" if (path / "pool").exists() else path).iter_samples():
            yield s.key, s.to_json(), dict(zip(s.images, s.image_bytes))
    elif path.suffix == ".tar":
        yield from iter_shard(path)
    elif path.suffix == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=64):
            for row in batch.to_pylist():
                if row["kind"] == "sample":
                    s = Sample.from_json(json.loads(row["json"]), row["images"] or [])
                    yield s.key, s.to_json(), dict(zip(s.images, s.image_bytes))
    else:
        raise ValueError(f"{path}: expected a shard (.tar), a pool file (.parquet) or a build folder")


def describe(d: dict, media: dict[str, bytes]) -> dict:
    """A short view of one sample: metadata, text head, images with their sizes."""
    from PIL import Image

    view = {k: d.get(k) for k in ("key", "source", "task", "category", "stage", "lang", "taxonomy")}
    if d.get("text") is not None:
        view["text"] = d["text"][:400]
    if d.get("messages"):
        view["messages"] = [{"role": m["role"], "content": m["content"][:200]} for m in d["messages"]]
    imgs = []
    for name in d.get("images", []):
        data = media.get(name, b"")
        try:
            with Image.open(io.BytesIO(data)) as im:
                imgs.append(f"{name} {im.width}x{im.height} {im.format} {len(data)} B")
        except Exception as e:
            imgs.append(f"{name} unreadable ({type(e).__name__}) {len(data)} B")
    view["images"] = imgs
    return view
