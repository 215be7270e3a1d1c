"""Pool-wide deduplication: `dedup.exact` (sha256 of image bytes and normalised text) and `dedup.near`
(images by perceptual hash within a Hamming distance, text by MinHash LSH above a Jaccard threshold).

Signatures are computed per pool file and candidate pairs per band, each as a Ray task when Ray is up
(in-process otherwise); the driver only joins the pairs. Of each duplicate group the smallest key stays.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field

from operators.base import AssemblyStep, OperatorConfig, PoolReader, register_assembly
from operators.quality.text import normalise_text, sample_text
from operators.sample import Rejection

log = logging.getLogger(__name__)


# --- signatures (run per pool file, on workers) -----------------------------------------------


@dataclass(frozen=True)
class SignatureSpec:
    """What to compute for each sample; small and picklable, sent to every worker."""

    exact: str | None = None  # "sample" | "text" | "images"
    phash: bool = False  # 64-bit pHash for banding and 256-bit pHash for verifying, per image
    num_perm: int = 0  # 0: no MinHash
    ngram: int = 5
    text_modalities: tuple[str, ...] = ("text",)
    seed: int = 1


@dataclass
class Signatures:
    keys: list[str] = field(default_factory=list)
    exact: list[str | None] = field(default_factory=list)
    phash: list[tuple[tuple[int, int], ...] | None] = field(default_factory=list)  # per image (h64, h256)
    minhash: list[np.ndarray | None] = field(default_factory=list)


def exact_hash(text: str, images: list[bytes], mode: str) -> str | None:
    h = hashlib.sha256()
    norm = normalise_text(text)
    if mode in ("sample", "text"):
        if mode == "text" and not norm:
            return None
        h.update(norm.encode("utf-8"))
    if mode in ("sample", "images"):
        if mode == "images" and not images:
            return None
        for data in images:
            h.update(b"\x00" + hashlib.sha256(data).digest())
    if mode == "sample" and not norm and not images:
        return None
    return h.hexdigest()


def image_phash(data: bytes, sizes: tuple[int, ...] = (8, 16)) -> tuple[int, ...] | None:
    """DCT perceptual hashes (size**2 bits each) as ints; None for an image PIL cannot decode."""
    import imagehash
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("L", (256, 256))  # JPEG: decode at reduced scale, phash looks at <= 64x64 anyway
            grey = img.convert("L")
            bits = [imagehash.phash(grey, hash_size=n).hash.flatten() for n in sizes]
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None
    return tuple(int.from_bytes(np.packbits(b).tobytes(), "big") for b in bits)


def shingles(text: str, n: int) -> set[bytes]:
    norm = normalise_text(text)
    if len(norm) <= n:
        return {norm.encode("utf-8")} if norm else set()
    return {norm[i:i + n].encode("utf-8") for i in range(len(norm) - n + 1)}


def compute_signatures(rows: Iterable[tuple[str, dict[str, Any], list[bytes]]], spec: SignatureSpec) -> Signatures:
    template = None
    if spec.num_perm:
        from datasketch import MinHash

        # one template: MinHash draws its permutations on every construction otherwise
        template = MinHash(num_perm=spec.num_perm, seed=spec.seed)
    out = Signatures()
    for key, d, images in rows:
        text = sample_text(d.get("text"), d.get("messages"))
        out.keys.append(key)
        out.exact.append(exact_hash(text, images, spec.exact) if spec.exact else None)
        ph = None
        if spec.phash and images:
            hashes = tuple(image_phash(b) for b in images)
            ph = None if any(h is None for h in hashes) else hashes  # type: ignore[assignment]
        out.phash.append(ph)
        mh = None
        modality = "multimodal" if d.get("images") else "text"
        if spec.num_perm and modality in spec.text_modalities:
            sh = shingles(text, spec.ngram)
            if sh:
                m = MinHash(num_perm=spec.num_perm, seed=spec.seed, permutations=template.permutations,
                            scheme=template.scheme)  # type: ignore[union-attr]
                m.update_batch(list(sh))
                mh = m.hashvalues.copy()
        out.minhash.append(mh)
    return out


def _file_rows(path: str, keys: frozenset[str], with_images: bool) -> Iterator[tuple[str, dict, list[bytes]]]:
    import pyarrow.parquet as pq

    cols = ["kind", "key", "json"] + (["images"] if with_images else [])
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=256, columns=cols):
        d = batch.to_pydict()
        for i, kind in enumerate(d["kind"]):
            if kind == "sample" and d["key"][i] in keys:
                yield d["key"][i], json.loads(d["json"][i]), (d["images"][i] or []) if with_images else []


def file_signatures(path: str, keys: frozenset[str], spec: SignatureSpec) -> Signatures:
    """Signatures of the candidate samples in one pool file (a Ray task body)."""
    with_images = spec.phash or spec.exact in ("sample", "images")
    return compute_signatures(_file_rows(path, keys, with_images), spec)


# --- candidate pairs (run per band, on workers) ------------------------------------------------


def _group_pairs(values: np.ndarray) -> np.ndarray:
    """All (i, j), i < j, of rows whose `values` are equal; (n, 2) int64."""
    if len(values) < 2:
        return np.empty((0, 2), dtype=np.int64)
    order = np.argsort(values, kind="stable")
    sv = values[order]
    starts = np.flatnonzero(np.r_[True, sv[1:] != sv[:-1]])
    ends = np.r_[starts[1:], len(sv)]
    out = []
    for s, e in zip(starts, ends):
        if e - s > 1:
            a, b = np.triu_indices(e - s, 1)
            out.append(np.stack([order[s + a], order[s + b]], axis=1))
    return np.concatenate(out) if out else np.empty((0, 2), dtype=np.int64)


def _row_ids(block: np.ndarray) -> np.ndarray:
    """One int per row, equal exactly when the rows are equal."""
    block = np.ascontiguousarray(block)
    _, inv = np.unique(block.view(np.dtype((np.void, block.dtype.itemsize * block.shape[1]))),
                       return_inverse=True)
    return inv.ravel()


def phash_band_pairs(hashes: np.ndarray, groups: np.ndarray, chunks: list[tuple[int, int]],
                     max_distance: int) -> np.ndarray:
    """Pairs within `max_distance` bits that share one of `chunks` (bit ranges) and a group (n_images).

    Pigeonhole: two 64-bit hashes within d bits agree exactly on one of any d+1 disjoint chunks.
    """
    found = []
    for lo, hi in chunks:
        part = (hashes >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)
        pairs = _group_pairs(_row_ids(np.stack([part, groups.astype(np.uint64)], axis=1)))
        if len(pairs):
            dist = np.bitwise_count(hashes[pairs[:, 0]] ^ hashes[pairs[:, 1]])
            found.append(pairs[dist <= max_distance])
    return np.unique(np.concatenate(found), axis=0) if found else np.empty((0, 2), dtype=np.int64)


def minhash_band_pairs(sigs: np.ndarray, bands: list[int], rows: int, threshold: float) -> np.ndarray:
    """Pairs that agree on a whole LSH band and whose signatures agree on >= threshold of values."""
    found = []
    for b in bands:
        pairs = _group_pairs(_row_ids(sigs[:, b * rows:(b + 1) * rows]))
        if len(pairs):
            jac = (sigs[pairs[:, 0]] == sigs[pairs[:, 1]]).mean(axis=1)
            found.append(pairs[jac >= threshold])
    return np.unique(np.concatenate(found), axis=0) if found else np.empty((0, 2), dtype=np.int64)


# --- running work on Ray or in-process --------------------------------------------------------


def _use_ray(flag: bool | None) -> bool:
    if flag is None:  # Ray counts as up only if something imported and started it (the runner does)
        ray = sys.modules.get("ray")
        return bool(ray is not None and ray.is_initialized())
    return flag


def parallel_map(fn: Callable[..., Any], calls: list[tuple], workers: int, use_ray: bool | None) -> list[Any]:
    """`[fn(*a) for a in calls]`, as Ray tasks (at most `workers` in flight) when Ray is up."""
    if not calls:
        return []
    if not _use_ray(use_ray):
        return [fn(*a) for a in calls]
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(fn)
    shared = {}  # large arguments go to the object store once, not once per task
    pending: dict[Any, int] = {}
    results: list[Any] = [None] * len(calls)
    for i, args in enumerate(calls):
        refs = []
        for a in args:
            if isinstance(a, (frozenset, np.ndarray)):
                if id(a) not in shared:
                    shared[id(a)] = ray.put(a)
                refs.append(shared[id(a)])
            else:
                refs.append(a)
        if len(pending) >= workers:
            done, _ = ray.wait(list(pending), num_returns=1)
            results[pending.pop(done[0])] = ray.get(done[0])
        pending[remote.remote(*refs)] = i
    for ref, i in pending.items():
        results[i] = ray.get(ref)
    return results


def pool_signatures(pool: PoolReader, keys: list[str], spec: SignatureSpec, workers: int,
                    use_ray: bool | None) -> Signatures:
    """Signatures for `keys`, one task per pool file; a key found in several files counts once (first)."""
    wanted = frozenset(keys)
    if pool.files:
        parts = parallel_map(file_signatures, [(f, wanted, spec) for f in pool.files], workers, use_ray)
    else:  # an in-memory pool (tests, small runs): read through the reader
        with_images = spec.phash or spec.exact in ("sample", "images")
        rows = ((s.key, s.to_json(), s.image_bytes) for s in pool.iter_samples(set(wanted), with_images))
        parts = [compute_signatures(rows, spec)]
    merged = Signatures()
    seen: set[str] = set()
    for part in parts:
        for i, k in enumerate(part.keys):
            if k not in seen:
                seen.add(k)
                merged.keys.append(k)
                merged.exact.append(part.exact[i])
                merged.phash.append(part.phash[i])
                merged.minhash.append(part.minhash[i])
    return merged


# --- grouping and the result ------------------------------------------------------------------


def groups_from_pairs(keys: list[str], pairs: Iterable[tuple[int, int]],
                      units: list[str] | None = None) -> dict[str, str]:
    """Union-find over index pairs: {removed key: kept key}; the smallest key of a group stays.

    With `units` (the input unit of each key), every member from the kept key's unit stays too: samples
    that one input yields together (questions about one chart) are siblings, not copies.
    """
    parent = list(range(len(keys)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            # the root is always the member with the smallest key, so it is the representative
            if keys[ra] < keys[rb]:
                parent[rb] = ra
            else:
                parent[ra] = rb
    out = {}
    for i in range(len(keys)):
        root = find(i)
        if root != i and (units is None or units[i] != units[root]):
            out[keys[i]] = keys[root]
    return out


def apply_removals(candidates: pa.Table, dup_of: dict[str, str], operator: str, reason: str,
                   ) -> tuple[pa.Table, list[Rejection]]:
    keys = candidates.column("key").to_pylist()
    inputs = candidates.column("input").to_pylist()
    mask = [k not in dup_of for k in keys]
    removed = [Rejection(inp, operator, reason, f"duplicate_of={dup_of[k]}", k)
               for k, inp in zip(keys, inputs) if k in dup_of]
    return candidates.filter(pa.array(mask, type=pa.bool_())), removed


class DedupConfig(OperatorConfig):
    workers: int = Field(2, ge=1, description="Ray tasks in flight (signatures per pool file, pairs per band)")
    use_ray: bool | None = Field(None, description="None: use Ray when it is already running")


@register_assembly("dedup.exact")
class ExactDeduplicator(AssemblyStep):
    """Remove samples whose normalised text and image bytes hash (sha256) like a smaller key's."""

    version = "1"

    class Config(DedupConfig):
        by: str = Field("sample", pattern="^(sample|text|images)$",
                        description="sample: text and images together; text or images: that part only")

    config: Config

    def run(self, candidates: pa.Table, pool: PoolReader) -> tuple[pa.Table, list[Rejection], dict[str, Any]]:
        keys = candidates.column("key").to_pylist()
        spec = SignatureSpec(exact=self.config.by)
        sigs = pool_signatures(pool, keys, spec, self.config.workers, self.config.use_ray)
        first: dict[str, str] = {}
        dup_of: dict[str, str] = {}
        for k, h in sorted(zip(sigs.keys, sigs.exact)):  # sorted: the smallest key of a hash stays
            if h is None:
                continue
            if h in first:
                dup_of[k] = first[h]
            else:
                first[h] = k
        kept, removed = apply_removals(candidates, dup_of, self.name, "exact_duplicate")
        report = {"candidates": len(keys), "hashed": sum(h is not None for h in sigs.exact),
                  "removed": len(removed), "groups": len(set(dup_of.values()))}
        log.info("dedup.exact: %s", report)
        return kept, removed, report


@register_assembly("dedup.near")
class NearDeduplicator(AssemblyStep):
    """Remove near-duplicates: images by pHash Hamming distance, text by MinHash LSH Jaccard."""

    version = "1"

    class Config(DedupConfig):
        images: bool = Field(True, description="compare samples with images by perceptual hash")
        max_distance: int = Field(12, ge=0, le=31, description="max Hamming distance of 64-bit pHashes")
        verify_distance: int = Field(
            72, ge=0, le=256, description="max Hamming distance of 256-bit pHashes (checks each candidate pair)"
        )
        text: bool = Field(True, description="compare texts by MinHash LSH")
        threshold: float = Field(0.7, gt=0.0, le=1.0, description="Jaccard similarity of char n-grams")
        num_perm: int = Field(128, ge=16, le=1024)
        ngram: int = Field(5, ge=1, description="character shingle length (on normalised text)")
        images_within_input: bool = Field(
            False, description="compare images of samples from one input unit (several questions about one "
            "chart share its image on purpose)")
        text_modalities: list[str] = Field(
            default_factory=lambda: ["text"],
            description="modalities compared by text; captions of different images are not duplicates",
        )
        seed: int = 1

    config: Config

    def run(self, candidates: pa.Table, pool: PoolReader) -> tuple[pa.Table, list[Rejection], dict[str, Any]]:
        c = self.config
        keys = candidates.column("key").to_pylist()
        spec = SignatureSpec(phash=c.images, num_perm=c.num_perm if c.text else 0,
                             ngram=c.ngram, text_modalities=tuple(c.text_modalities), seed=c.seed)
        sigs = pool_signatures(pool, keys, spec, c.workers, c.use_ray)
        input_of = dict(zip(keys, candidates.column("input").to_pylist()))
        image_pairs = self._image_pairs(sigs) if c.images else []
        text_pairs = self._text_pairs(sigs) if c.text else []
        units = None if c.images_within_input else [input_of[k] for k in sigs.keys]
        dup_of = groups_from_pairs(sigs.keys, image_pairs, units)
        for k, rep in groups_from_pairs(sigs.keys, text_pairs).items():
            dup_of.setdefault(k, rep)
        kept, removed = apply_removals(candidates, dup_of, self.name, "near_duplicate")
        report = {"candidates": len(keys), "image_pairs": len(image_pairs), "text_pairs": len(text_pairs),
                  "removed": len(removed), "groups": len(set(dup_of.values()))}
        log.info("dedup.near: %s", report)
        return kept, removed, report

    def _image_pairs(self, sigs: Signatures) -> list[tuple[int, int]]:
        c = self.config
        idx = [i for i, h in enumerate(sigs.phash) if h]
        if len(idx) < 2:
            return []
        first = np.array([sigs.phash[i][0][0] for i in idx], dtype=np.uint64)  # type: ignore[index]
        n_img = np.array([min(len(sigs.phash[i]), 255) for i in idx], dtype=np.uint64)  # type: ignore[arg-type]
        n_chunks = c.max_distance + 1
        bounds = np.linspace(0, 64, n_chunks + 1).astype(int)
        chunks = [(int(lo), int(hi)) for lo, hi in itertools.pairwise(bounds)]
        per_task = [chunks[i::c.workers] for i in range(min(c.workers, len(chunks)))]
        parts = parallel_map(phash_band_pairs, [(first, n_img, ch, c.max_distance) for ch in per_task],
                             c.workers, c.use_ray)
        out = []
        for a, b in np.unique(np.concatenate(parts), axis=0) if parts else []:
            ha, hb = sigs.phash[idx[a]], sigs.phash[idx[b]]
            # the bands compared the first image at 64 bits; every image must be close at both sizes
            if all((x[0] ^ y[0]).bit_count() <= c.max_distance and (x[1] ^ y[1]).bit_count() <= c.verify_distance
                   for x, y in zip(ha, hb)):  # type: ignore[arg-type]
                out.append((idx[a], idx[b]))
        return out

    def _text_pairs(self, sigs: Signatures) -> list[tuple[int, int]]:
        from datasketch import MinHashLSH

        c = self.config
        idx = [i for i, m in enumerate(sigs.minhash) if m is not None]
        if len(idx) < 2:
            return []
        matrix = np.stack([sigs.minhash[i] for i in idx])  # type: ignore[misc]  # (n, num_perm)
        lsh = MinHashLSH(threshold=c.threshold, num_perm=c.num_perm)  # datasketch's optimal bands x rows
        bands = list(range(lsh.b))
        per_task = [bands[i::c.workers] for i in range(min(c.workers, len(bands)))]
        parts = parallel_map(minhash_band_pairs, [(matrix, bs, lsh.r, c.threshold) for bs in per_task],
                             c.workers, c.use_ray)
        pairs = np.unique(np.concatenate(parts), axis=0) if parts else np.empty((0, 2), dtype=np.int64)
        return [(idx[a], idx[b]) for a, b in pairs]
