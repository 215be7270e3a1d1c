"""Near-duplicate quality and speed on a generated set with known duplicates.

Images: random scenes plus resized, recompressed and 5%-cropped copies; texts: random sentences plus
copies with small edits. Reports precision/recall per kind, 1 vs 2 Ray workers, and datatrove's MinHash
dedup on the same texts (run in a separate venv: /tmp/dtvenv, see DATATROVE_PY), and the bare
datasketch MinHashLSH loop (overhead of ours).
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from operators.sample import Sample, items_to_table

DATATROVE_PY = os.environ.get("DATATROVE_PY", "/tmp/dtvenv/bin/python")
_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "so", "vi", "pe", "da", "go", "ul", "an", "er", "is", "om"]


# --- generated data ---------------------------------------------------------------------------


def random_scene(rng: np.random.Generator, w: int = 320, h: int = 240) -> bytes:
    """A random picture: gradient background, shapes, a little noise; PNG bytes."""
    from PIL import Image, ImageDraw

    y, x = np.mgrid[0:h, 0:w]
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = ((x * rng.uniform(-1, 1) + y * rng.uniform(-1, 1)) / (w + h) + 1) / 2
    bg = (c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]).astype(np.uint8)
    img = Image.fromarray(bg, "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(4, 10))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = rng.integers(0, 3)
        if shape == 0:
            draw.ellipse([x0, y0, x1, y1], fill=fill)
        elif shape == 1:
            draw.rectangle([x0, y0, x1, y1], fill=fill)
        else:
            draw.line([x0, y0, x1, y1], fill=fill, width=int(rng.integers(3, 12)))
    arr = np.asarray(img).astype(np.int16) + rng.integers(-8, 9, (h, w, 3))
    buf = io.BytesIO()
    Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB").save(buf, "PNG")
    return buf.getvalue()


def image_variant(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    buf = io.BytesIO()
    if kind == "resized":
        f = rng.uniform(0.5, 0.8)
        img.resize((int(w * f), int(h * f)), Image.Resampling.LANCZOS).save(buf, "PNG")
    elif kind == "recompressed":
        img.save(buf, "JPEG", quality=int(rng.integers(30, 60)))
    elif kind == "cropped":  # about 5% of the area off (2.5% of each side length), from random sides
        dx, dy = round(w * 0.025), round(h * 0.025)
        ox, oy = int(rng.integers(0, dx + 1)), int(rng.integers(0, dy + 1))
        img.crop((ox, oy, ox + w - dx, oy + h - dy)).save(buf, "PNG")
    else:
        raise ValueError(kind)
    return buf.getvalue()


def random_word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4)))


def random_text(rng: random.Random, n_words: int) -> str:
    return " ".join(random_word(rng) for _ in range(n_words)).capitalize() + "."


def text_edit(text: str, rng: random.Random) -> str:
    """A small caption edit: one word replaced, inserted or deleted, or the case/punctuation changed."""
    words = text.rstrip(".").split()
    op = rng.choice(["replace", "insert", "delete", "case"])
    i = rng.randrange(len(words))
    if op == "replace":
        words[i] = random_word(rng)
    elif op == "insert":
        words.insert(i, random_word(rng))
    elif op == "delete" and len(words) > 3:
        del words[i]
    else:
        return text.upper() + "!"
    return " ".join(words) + "."


def make_sets(n_images: int, n_texts: int, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Image samples and text samples; `meta["cluster"]` names the original each copy comes from."""
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    images: list[Sample] = []
    for i in range(n_images):
        base = random_scene(rng)
        copies = [("orig", base)]
        if i % 2 == 0:  # half the originals get 1-3 altered copies
            kinds = ["resized", "recompressed", "cropped"]
            prng.shuffle(kinds)
            copies += [(k, image_variant(base, k, rng)) for k in kinds[:prng.randint(1, 3)]]
        for j, (kind, data) in enumerate(copies):
            s = Sample(key=f"img-{i:05d}-{j}", input=f"gen:img:{i}:{j}", source="gen", task="caption",
                       category="caption", stage=[1, 2], text=random_text(prng, 12),
                       meta={"cluster": i, "variant": kind})
            s.add_image(data, "jpg" if data[:2] == b"\xff\xd8" else "png")
            images.append(s)
    texts: list[Sample] = []
    for i in range(n_texts):
        base = random_text(prng, prng.randint(15, 40))
        copies = [base] + ([text_edit(base, prng) for _ in range(prng.randint(1, 2))] if i % 2 == 0 else [])
        for j, t in enumerate(copies):
            texts.append(Sample(key=f"txt-{i:05d}-{j}", input=f"gen:txt:{i}:{j}", source="gen", task="text",
                                category="text_only", stage=[2], text=t, meta={"cluster": i}))
    return images, texts


# --- harness ----------------------------------------------------------------------------------


class FilePool:
    """A pool over Parquet files written with the pool's row schema (what the engine writes)."""

    def __init__(self, files: list[str]):
        self.files = files

    def iter_samples(self, keys=None, with_images=True):  # pragma: no cover - dedup reads files
        raise NotImplementedError


def write_pool(samples: list[Sample], folder: Path, n_files: int) -> FilePool:
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for f in range(n_files):
        path = folder / f"part-{f:03d}.parquet"
        pq.write_table(items_to_table(samples[f::n_files]), path)
        files.append(str(path))
    return FilePool(files)


def candidates_of(samples: list[Sample]):
    import pyarrow as pa

    return pa.table({"key": [s.key for s in samples], "input": [s.input for s in samples]})


def quality(samples: list[Sample], removed) -> dict:
    """Precision: removed samples whose kept twin is from the same original; recall: of all copies."""
    cluster = {s.key: s.meta["cluster"] for s in samples}
    expected = len(samples) - len(set(cluster.values()))
    correct = sum(cluster[r.key] == cluster[r.detail.split("=", 1)[1]] for r in removed)
    return {"expected_removed": expected, "removed": len(removed), "correct": correct,
            "precision": round(correct / len(removed), 4) if removed else 1.0,
            "recall": round(correct / expected, 4) if expected else 1.0}


def run_dedup(step_config: dict, samples: list[Sample], pool: FilePool) -> tuple[dict, float, list]:
    from operators.dedup import NearDeduplicator

    step = NearDeduplicator(step_config)
    t0 = time.perf_counter()
    _, removed, report = step.run(candidates_of(samples), pool)
    return report, time.perf_counter() - t0, removed


def datatrove_minhash(texts: list[Sample], workdir: Path, threshold_hint: float) -> dict:
    """datatrove's 4-stage MinHash dedup on the same texts, in its own venv; time and removed count."""
    if not Path(DATATROVE_PY).exists():
        return {"skipped": f"no datatrove venv at {DATATROVE_PY}"}
    data = workdir / "dt_in"
    data.mkdir(parents=True, exist_ok=True)
    with open(data / "texts.jsonl", "w") as f:
        f.writelines(json.dumps({"id": s.key, "text": s.text}) + "\n" for s in texts)
    script = textwrap.dedent(f"""
        import json, time, sys
        from datatrove.executor import LocalPipelineExecutor
        from datatrove.pipeline.dedup import MinhashDedupSignature
        from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets,
            MinhashDedupCluster, MinhashDedupFilter)
        from datatrove.pipeline.readers import JsonlReader
        from datatrove.pipeline.writers import JsonlWriter
        from datatrove.utils.hashing import HashConfig
        W = {str(workdir)!r}
        cfg = MinhashConfig(hash_config=HashConfig(precision=64), num_buckets=14, hashes_per_bucket=8,
                            n_grams=5)
        rd = lambda: JsonlReader({str(data)!r})
        t0 = time.perf_counter()
        stages = [([rd(), MinhashDedupSignature(output_folder=W + "/sig", config=cfg)], 1),
                  ([MinhashDedupBuckets(input_folder=W + "/sig", output_folder=W + "/buckets", config=cfg)],
                   cfg.num_buckets),  # the bucket stage runs one task per band
                  ([MinhashDedupCluster(input_folder=W + "/buckets", output_folder=W + "/ids", config=cfg)], 1),
                  ([rd(), MinhashDedupFilter(input_folder=W + "/ids",
                    exclusion_writer=JsonlWriter(W + "/removed", compression=None)),
                    JsonlWriter(W + "/kept", compression=None)], 1)]
        for i, (pipe, tasks) in enumerate(stages):
            LocalPipelineExecutor(pipeline=pipe, tasks=tasks, workers=1, logging_dir=W + "/logs/" + str(i),
                                  skip_completed=False).run()
        dt = time.perf_counter() - t0
        import glob
        removed = [json.loads(l)["id"] for p in glob.glob(W + "/removed/*") for l in open(p)]
        print(json.dumps({{"seconds": dt, "removed_ids": removed}}))
    """)
    proc = subprocess.run([DATATROVE_PY, "-c", script], capture_output=True, text=True, timeout=900, check=False,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "DATATROVE_COLORIZE_LOGS": "0"})
    if proc.returncode != 0:
        return {"failed": proc.stderr[-800:]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    cluster = {s.key: s.meta["cluster"] for s in texts}
    removed = res["removed_ids"]
    expected = len(texts) - len(set(cluster.values()))
    # datatrove keeps one per cluster: a removal is right when its original cluster had >1 member
    sizes: dict[int, int] = {}
    for c in cluster.values():
        sizes[c] = sizes.get(c, 0) + 1
    plausible = sum(sizes[cluster[k]] > 1 for k in removed)
    return {"seconds": round(res["seconds"], 3), "removed": len(removed), "expected_removed": expected,
            "removed_from_true_clusters": plausible,
            "config": "5-gram words, 14 bands x 8 rows, 64-bit hashes (datatrove defaults otherwise)"}


def bare_datasketch(texts: list[Sample], threshold: float = 0.7, num_perm: int = 128) -> dict:
    """The loop our text dedup wraps, done the textbook way: MinHash + MinHashLSH insert/query per text."""
    from datasketch import MinHash, MinHashLSH

    from operators.dedup import shingles

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    removed = 0
    for s in sorted(texts, key=lambda s: s.key):
        m = MinHash(num_perm=num_perm)
        m.update_batch(list(shingles(s.text or "", 5)))
        if lsh.query(m):  # an earlier (smaller) key is similar: drop this one
            removed += 1
        else:
            lsh.insert(s.key, m)
    return {"seconds": round(time.perf_counter() - t0, 3), "removed": removed}


def run(quick: bool) -> dict:
    import ray

    n_img, n_txt = (200, 1000) if quick else (1000, 5000)
    images, texts = make_sets(n_img, n_txt, seed=0)
    # the machine is shared: the load average says how far the timings (not the quality) can be trusted
    out: dict = {"images": {"samples": len(images)}, "texts": {"samples": len(texts)},
                 "load_average_at_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        ipool = write_pool(images, tmpd / "ipool", 8)
        tpool = write_pool(texts, tmpd / "tpool", 8)
        cfg_img = {"text": False, "use_ray": False, "workers": 1}
        cfg_txt = {"images": False, "use_ray": False, "workers": 1}
        rep, secs, removed = run_dedup(cfg_img, images, ipool)
        out["images"].update(quality(images, removed), seconds_in_process=round(secs, 3),
                             candidate_pairs=rep["image_pairs"])
        rep, secs, removed = run_dedup(cfg_txt, texts, tpool)
        out["texts"].update(quality(texts, removed), seconds_in_process=round(secs, 3),
                            candidate_pairs=rep["text_pairs"])
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        try:
            for kind, samples, pool, cfg in (("images", images, ipool, cfg_img), ("texts", texts, tpool, cfg_txt)):
                run_dedup({**cfg, "use_ray": True, "workers": 2}, samples, pool)  # warm the workers
                for w in (1, 2):
                    _, secs, removed = run_dedup({**cfg, "use_ray": True, "workers": w}, samples, pool)
                    out[kind][f"ray_{w}_workers_seconds"] = round(secs, 3)
                    out[kind][f"ray_{w}_workers_samples_per_s"] = round(len(samples) / secs, 1)
                    out[kind][f"ray_{w}_workers_removed"] = len(removed)
                out[kind]["speedup_2_vs_1"] = round(out[kind]["ray_1_workers_seconds"]
                                                    / out[kind]["ray_2_workers_seconds"], 2)
        finally:
            ray.shutdown()
        out["load_average_after_ray"] = round(os.getloadavg()[0], 2)
        out["bare_datasketch_texts"] = bare_datasketch(texts)
        out["datatrove_texts"] = datatrove_minhash(texts, tmpd / "dt", 0.7)
    out["note"] = ("quality figures are exact; times come from a shared 2-core machine (see load averages) where "
                   "Ray workers run in their own scheduler group, so in-process vs Ray times are not comparable")
    return out
