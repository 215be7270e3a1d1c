"""Trainer input pipeline vs the tiny model: loader samples/s per worker (ours, and webdataset's own
WebDataset + decode loop on the same shards) against the samples/s one tiny-model training step consumes.

Uses the demo shards (out/demo) when they exist, otherwise synthetic shards in the same format.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch

DEMO = Path("out/demo")
STREAM = "stage2-multimodal"


def _data(tmp: Path, n: int) -> tuple[Path, str]:
    """A snapshot of the demo's stream (a rebuild may be rewriting it), else synthetic shards."""
    from train.shards import stream_shards

    try:
        shutil.copytree(DEMO / "shards" / STREAM, tmp / "demo" / "shards" / STREAM)
        if stream_shards(tmp / "demo", STREAM):
            return tmp / "demo", "demo shards"
    except (OSError, ValueError, KeyError):
        pass
    from tests.train.shardgen import write_shards

    return write_shards(tmp / "synthetic", n_text=n, n_image=n, per_shard=max(n // 8, 1)), "synthetic shards"


def _processor(data: Path):
    from model.config import VLMConfig
    from model.processor import VLChatProcessor
    from model.tokenizer import train_tokenizer
    from train.shards import stream_shards

    tok = train_tokenizer(stream_shards(data, STREAM)[:4], vocab_size=1024, from_files=True)
    return VLChatProcessor(tok, VLMConfig.from_name("tiny", vocab_size=1024))


def _ours(data: Path, processor, workers: int, batches: int) -> float:
    from train.encode import SampleEncoder
    from train.loader import StreamDataset, StreamLoader
    from train.shards import stream_shards

    enc = SampleEncoder(processor, 256)
    ds = StreamDataset(stream_shards(data, STREAM), enc, batch_size=8, seq_len=256, pad_id=processor.tokenizer.pad_id,
                       image_tokens=processor.image_tokens, shuffle_buffer=64)
    loader = StreamLoader(ds, workers=workers)
    next(loader)  # worker start-up is not throughput
    t0, n = time.perf_counter(), 0
    for _ in range(batches):
        n += next(loader)["input_ids"].shape[0]
    return n / (time.perf_counter() - t0)


def _bare_webdataset(data: Path, samples: int) -> float:
    """webdataset's own pipeline on the same tars: read, group, decode images to PIL (no tokenizing)."""
    import webdataset as wds

    from train.shards import stream_shards

    ds = wds.WebDataset(stream_shards(data, STREAM), shardshuffle=False, empty_check=False).decode("pil")
    t0, n = time.perf_counter(), 0
    while n < samples:
        for _ in ds:
            n += 1
            if n >= samples:
                break
    return n / (time.perf_counter() - t0)


def _model_consumption(data: Path, processor, steps: int) -> dict:
    from model.vlm import MultiModalityCausalLM
    from train.encode import SampleEncoder
    from train.loader import StreamDataset
    from train.shards import stream_shards

    enc = SampleEncoder(processor, 256)
    ds = StreamDataset(stream_shards(data, STREAM), enc, batch_size=8, seq_len=256, pad_id=processor.tokenizer.pad_id,
                       image_tokens=processor.image_tokens, shuffle_buffer=1)
    it = iter(ds)
    batches = [next(it) for _ in range(steps + 1)]
    torch.manual_seed(0)
    model = MultiModalityCausalLM(processor.config)
    model.set_trainable(2)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, betas=(0.9, 0.95))
    keys = ("input_ids", "attention_mask", "labels", "pixel_values", "images_seq_mask", "images_emb_mask")

    def step(b: dict) -> None:
        model(**{k: b[k] for k in keys}).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step(batches[0])
    t0 = time.perf_counter()
    rows = tokens = 0
    for b in batches[1:]:
        step(b)
        rows += b["input_ids"].shape[0]
        tokens += int(b["attention_mask"].sum())
    dt = time.perf_counter() - t0
    return {"samples_per_s": rows / dt, "tokens_per_s": tokens / dt}


def run(quick: bool) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the loader's workers and the model share the same cores here
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data, kind = _data(Path(tmp), 64 if quick else 256)
            processor = _processor(data)
            batches = 6 if quick else 24
            res: dict = {"data": kind, "stream": STREAM,
                         "batch": 8, "gpu": "none lent to this task: GPU tokens/s and MFU not measured"}
            loader = {f"workers_{w}": _ours(data, processor, w, batches) for w in (0, 1, 2)}
            res["loader_samples_per_s"] = loader
            res["loader_samples_per_s_per_worker"] = {
                "in_process": loader["workers_0"], "1_worker": loader["workers_1"],
                "2_workers": loader["workers_2"] / 2}
            bare = _bare_webdataset(data, batches * 8)
            res["bare_webdataset_decode_samples_per_s"] = bare
            res["ours_vs_bare_webdataset"] = loader["workers_0"] / bare
            model = _model_consumption(data, processor, 3 if quick else 10)
            res["tiny_model_train"] = model
            res["workers_needed_to_feed_tiny_model"] = model["samples_per_s"] / loader["workers_0"]
            return res
    finally:
        torch.set_num_threads(threads)
