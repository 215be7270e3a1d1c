"""Reading the data engine's WebDataset shards: stream manifests, raw samples per tar, held-out split.

This is the only tie to the data engine (the shard contract in DESIGN.md); nothing here imports operators.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tarfile
from collections.abc import Iterator
from pathlib import Path

from webdataset.tariterators import group_by_keys, tar_file_expander

log = logging.getLogger(__name__)


def stream_shards(data_dir: str | Path, stream: str) -> list[str]:
    """Shard paths of one stream in manifest order; [] when the stream was not built."""
    root = Path(data_dir) / "shards" / stream
    manifest = root / "manifest.json"
    if manifest.exists():
        entries = json.loads(manifest.read_text())["shards"]
        paths = [root / e["name"] for e in entries if e.get("count", 1) > 0]
    else:
        paths = sorted(root.glob(f"{stream}-*.tar"))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"stream {stream}: manifest lists missing shards {missing[:3]}")
    return [str(p) for p in paths]


def stream_count(data_dir: str | Path, stream: str) -> int:
    manifest = Path(data_dir) / "shards" / stream / "manifest.json"
    return int(json.loads(manifest.read_text())["count"]) if manifest.exists() else 0


def iter_tar(path: str) -> Iterator[dict]:
    """Raw samples of one shard: {"__key__", "json": bytes, "0.png": bytes, ...} in member order."""
    with open(path, "rb") as f:
        yield from group_by_keys(tar_file_expander([{"url": path, "stream": f}]))


class SampleError(ValueError):
    """A sample the trainer cannot use; `reason` is a short snake_case counter name."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def parse_sample(raw: dict) -> dict:
    """The sample JSON with its image bytes attached in image order; SampleError when unusable."""
    try:
        meta = json.loads(raw["json"])
    except KeyError as e:
        raise SampleError("missing_json", f"{raw.get('__key__')} in {raw.get('__url__')}") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise SampleError("bad_json", f"{raw.get('__key__')} in {raw.get('__url__')}: {e}") from e
    if not isinstance(meta, dict) or not (meta.get("text") or meta.get("messages")):
        raise SampleError("no_text", f"{raw.get('__key__')}: neither text nor messages")
    names = meta.get("images") or []
    missing = [n for n in names if str(n).lower() not in raw]
    if missing:
        raise SampleError("missing_image", f"{raw.get('__key__')}: no members {missing}")
    meta["image_bytes"] = [raw[n.lower()] for n in names]
    return meta


def sample_key(raw: dict) -> str:
    """The sample's own key: up-sampled copies (tar key `<key>_r1`) share it, so they share a split."""
    try:
        return str(json.loads(raw["json"])["key"])
    except (KeyError, ValueError, TypeError, UnicodeDecodeError):
        return str(raw["__key__"])


def _key_hash(key: str) -> int:
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:4], "big")


def is_heldout(key: str, percent: float) -> bool:
    """Deterministic held-out split by key hash, the same for every rank, worker and run."""
    return percent > 0 and _key_hash(key) % 10000 < percent * 100


def heldout_keys(shards: list[str], count: int, percent: float, small: int = 20_000) -> frozenset[str] | None:
    """For a small stream, the exact held-out set: the ceil(count x percent) keys of lowest hash, at least
    one (a hash threshold alone can leave a small stream without validation data); None for a large stream,
    which uses `is_heldout`. Reads only the JSON members (a seekable tar skips the images)."""
    if percent <= 0 or count > small or (count == 0 and len(shards) > 8):
        return None
    keys: set[str] = set()
    for path in shards:
        try:
            with tarfile.open(path) as tf:
                for m in tf:
                    if not (m.isfile() and m.name.endswith(".json")):
                        continue
                    raw = {"__key__": m.name.split(".", 1)[0], "json": tf.extractfile(m).read()}
                    keys.add(sample_key(raw))
        except (tarfile.TarError, OSError) as e:  # the loader counts the bad shard when it reads it
            log.warning("held-out scan of %s stopped: %r", path, e)
    n = min(max(1, math.ceil(len(keys) * percent / 100)), len(keys) - 1)  # never the only sample
    return frozenset(sorted(keys, key=lambda k: (_key_hash(k), k))[: max(n, 0)])
