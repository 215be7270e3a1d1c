"""The shard loader: open_clip reading order, splits, packing, SFT masks, bad samples, exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipelines.shards import ShardWriter
from tests.train.shardgen import shape_png, write_shards
from train.encode import SampleEncoder
from train.loader import StreamDataset, StreamLoader
from train.shards import iter_tar, stream_count, stream_shards


def _dataset(shards, processor, **kw) -> StreamDataset:
    opts = {"batch_size": 4, "seq_len": 128, "pad_id": processor.tokenizer.pad_id, "image_tokens": 16,
                "shuffle_buffer": 8, "seed": 1}
    opts.update(kw)
    enc = SampleEncoder(processor, opts["seq_len"])
    return StreamDataset(shards, enc, **opts)


def _keys(ds: StreamDataset, epoch: int, worker: int, workers: int) -> list[str]:
    return [raw["__key__"] for raw in ds._raw(epoch, worker, workers)]


@pytest.mark.parametrize("per_shard", [4, 16])  # 12 shards >= 4 readers; 3 shards < 4 readers
def test_every_sample_once_per_epoch_across_ranks_and_workers(tmp_path, processor, per_shard) -> None:
    out = write_shards(tmp_path, n_text=48, n_image=4, per_shard=per_shard)
    paths = stream_shards(out, "stage2-text")
    assert len(paths) == 48 // per_shard and stream_count(out, "stage2-text") == 48
    seen: list[str] = []
    for rank in range(2):
        ds = _dataset(paths, processor, rank=rank, world=2)
        for w in range(2):
            seen += _keys(ds, 0, w, 2)
    assert sorted(seen) == sorted(f"txt-s2-{i:05d}" for i in range(48))
    ds = _dataset(paths, processor)
    assert _keys(ds, 0, 0, 1) == _keys(ds, 0, 0, 1)  # deterministic per epoch
    if per_shard == 4:
        assert _keys(ds, 0, 0, 1) != _keys(ds, 1, 0, 1)  # the shard order is reshuffled per epoch


def test_heldout_split_is_disjoint(shards, processor) -> None:
    paths = stream_shards(shards, "stage2-multimodal")
    train = set(_keys(_dataset(paths, processor, heldout_percent=20), 0, 0, 1))
    val = set(_keys(_dataset(paths, processor, heldout_percent=20, split="val"), 0, 0, 1))
    assert train.isdisjoint(val) and len(train | val) == 48 and 3 <= len(val) <= 18


def test_small_streams_always_hold_some_samples_out(tmp_path, processor) -> None:
    from train.shards import heldout_keys

    out = write_shards(tmp_path, n_text=4, n_image=6, per_shard=4)
    paths = stream_shards(out, "stage2-multimodal")
    held = heldout_keys(paths, stream_count(out, "stage2-multimodal"), 5.0)
    assert len(held) == 1  # 5% of 6 samples rounds up to one
    train = _keys(_dataset(paths, processor, heldout=held, heldout_percent=5.0), 0, 0, 1)
    val = _keys(_dataset(paths, processor, heldout=held, heldout_percent=5.0, split="val"), 0, 0, 1)
    assert len(train) == 5 and val == sorted(held) and held.isdisjoint(train)
    one = write_shards(tmp_path / "one", n_text=1, n_image=1)
    assert heldout_keys(stream_shards(one, "stage2-text"), 1, 50.0) == frozenset()  # never the only sample
    assert heldout_keys(paths, 50_000, 5.0) is None  # large streams use the hash threshold


def test_sft_labels_supervise_only_the_answer(shards, processor) -> None:
    enc = SampleEncoder(processor, 256)
    raw = next(iter_tar(stream_shards(shards, "stage3-multimodal")[0]))
    from train.shards import parse_sample

    sample = parse_sample(raw)
    ex = enc(sample)
    sup = ex["labels"][ex["labels"] != -100].tolist()
    answer = sample["messages"][1]["content"]
    assert sup[-1] == processor.tokenizer.eos_id
    assert processor.tokenizer.decode(sup[:-1]).strip() == answer
    assert int(ex["images_seq_mask"].sum()) == 16 and ex["pixel_values"].shape == (1, 3, 128, 128)
    # pretraining text: every text token supervised, image tokens masked
    raw = next(iter_tar(stream_shards(shards, "stage2-multimodal")[0]))
    ex = enc(parse_sample(raw))
    assert bool((ex["labels"][ex["images_seq_mask"]] == -100).all())
    assert bool((ex["labels"][~ex["images_seq_mask"]] == ex["input_ids"][~ex["images_seq_mask"]]).all())


def test_packing_fills_rows_and_keeps_images_whole(shards, processor) -> None:
    text = _dataset(stream_shards(shards, "stage2-text"), processor, packing=True, seq_len=64)
    enc = SampleEncoder(processor, 64)
    total = sum(enc(s, packed=True)["input_ids"].numel() for s in map(_parse, text._raw(0, 0, 1)))
    batches = list(_one_epoch(text))
    rows = [r for b in batches for r in b["attention_mask"]]
    assert sum(int(r.sum()) for r in rows) == total  # no token lost or duplicated
    assert all(int(r.sum()) == 64 for r in rows[:-1])  # every row full but the epoch's last
    mm = _dataset(stream_shards(shards, "stage2-multimodal"), processor, packing=True, seq_len=96)
    for b in _one_epoch(mm):
        assert b["input_ids"].shape[1] <= 96
        n_img = b["images_emb_mask"].any(-1).sum(1)  # (B,) images per packed row
        assert torch.equal(b["images_seq_mask"].sum(1), n_img * 16)
        assert int(n_img.max()) >= 2  # several documents share a row


def _parse(raw):
    from train.shards import parse_sample

    return parse_sample(raw)


def _one_epoch(ds: StreamDataset):
    return (batch for _, batch in ds._batches(0, 0, 1, 0))


def _png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims a huge size (a decompression bomb as Pillow sees it at open)."""
    import struct
    import zlib

    png = bytearray(shape_png("red", "square"))
    ihdr = png[12:29]  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    png[12:29] = ihdr
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(png)


def test_bad_samples_are_skipped_and_counted(tmp_path, processor) -> None:
    w = ShardWriter(tmp_path / "shards" / "stage2-multimodal", "stage2-multimodal")
    good = {"key": "good", "text": "<image> a red square.", "images": ["0.png"]}
    png = shape_png("red", "square")
    w.write("good", {"json": json.dumps(good).encode(), "0.png": png})
    w.write("trunc", {"json": json.dumps({**good, "key": "trunc"}).encode(), "0.png": png[:60]})
    w.write("mismatch", {"json": json.dumps({**good, "key": "mismatch", "text": "<image><image> x"}).encode(),
                         "0.png": png})
    w.write("brokenjson", {"json": b"{not json", "0.png": png})
    w.write("noimage", {"json": json.dumps({**good, "key": "noimage"}).encode()})
    w.write("notext", {"json": json.dumps({**good, "key": "notext", "text": ""}).encode(), "0.png": png})
    w.write("bomb", {"json": json.dumps({**good, "key": "bomb"}).encode(), "0.png": _png_claiming(30000, 30000)})
    w.write("good2", {"json": json.dumps({**good, "key": "good2"}).encode(), "0.png": png})
    w.close()
    # a second shard cut in the middle of a member
    paths = stream_shards(tmp_path, "stage2-multimodal")
    cut = tmp_path / "shards" / "stage2-multimodal" / "cut.tar"
    cut.write_bytes(Path(paths[0]).read_bytes()[:3000])
    ds = _dataset(paths + [str(cut)], processor, batch_size=8, shuffle_buffer=1)
    batches = list(_one_epoch(ds))
    assert sum(b["input_ids"].shape[0] for b in batches) == 2 + 1  # good, good2, and "good" of the cut shard
    assert ds.encode.skipped == {"bad_image": 2, "bad_sample": 1, "bad_json": 1, "missing_image": 1,
                                 "no_text": 1, "bad_shard": 1}
    # counted in worker processes too: the counts travel back with the batches
    two = StreamLoader(_dataset(paths + [str(cut)], processor, batch_size=8, shuffle_buffer=1), workers=2)
    _take(two, 2)
    skipped, _ = two.counts()
    assert set(skipped) == {"bad_image", "bad_sample", "bad_json", "missing_image", "no_text", "bad_shard"}


def _take(loader: StreamLoader, n: int) -> list[dict]:
    return [next(loader) for _ in range(n)]


class CountingEncoder(SampleEncoder):
    """The real encoder, counting the samples it decodes."""

    calls = 0

    def __call__(self, sample: dict, packed: bool = False) -> dict | None:
        CountingEncoder.calls += 1
        return super().__call__(sample, packed)


@pytest.mark.parametrize(("stream", "packing", "workers", "cut"), [("stage2-text", True, 2, 7),
                                                                   ("stage2-text", True, 0, 5),
                                                                   ("stage2-multimodal", True, 0, 3),
                                                                   ("stage2-multimodal", False, 0, 7)])
def test_exact_resume_gives_the_uninterrupted_batches(shards, processor, stream, packing, workers, cut) -> None:
    paths = stream_shards(shards, stream)
    ref = StreamLoader(_dataset(paths, processor, packing=packing, batch_size=3), workers=workers)
    before = _take(ref, cut)
    state = json.loads(json.dumps(ref.state_dict()))  # it travels through the checkpoint's JSON
    after = _take(ref, 12)  # crosses an epoch boundary of this small stream
    assert max(e for e, *_ in ref.state_dict()["slots"].values()) > 0
    ds = _dataset(paths, processor, packing=packing, batch_size=3)
    ds.encode = CountingEncoder(processor, ds.seq_len)
    CountingEncoder.calls = 0
    resumed = StreamLoader(ds, workers=workers)
    resumed.load_state_dict(state)
    again = [next(resumed)]
    if workers == 0:
        # the samples before the cursor are skipped as bytes: only this batch's samples get decoded
        ((_, index, _),) = state["slots"].values()
        assert CountingEncoder.calls <= (3 if not packing else 3 * 128 // 8)
        assert index > (0 if stream == "stage2-text" else CountingEncoder.calls)
    again += _take(resumed, 11)
    for a, b in zip(after, again, strict=True):
        assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
        if a["pixel_values"] is not None:
            assert torch.equal(a["pixel_values"], b["pixel_values"])
    assert not torch.equal(before[-1]["input_ids"][:1], after[0]["input_ids"][:1])


def test_long_interleaved_document_keeps_the_images_that_fit(processor) -> None:
    png = shape_png("green", "circle")
    words = " ".join(["the cat sat on the mat"] * 12)
    sample = {"key": "long", "text": f"<image> {words} <image> {words} <image> {words}", "image_bytes": [png] * 3}
    enc = SampleEncoder(processor, 128)
    full = SampleEncoder(processor, 4096)(sample)
    pos = full["images_seq_mask"].nonzero().flatten()
    second_end, third_start = int(pos[31]), int(pos[32])
    assert second_end < 128 <= third_start + 16 or third_start >= 128
    ex = enc(sample, packed=True)  # a sample with images is cut even in a packed stream
    assert ex["pixel_values"].shape[0] == 2 and int(ex["images_seq_mask"].sum()) == 32
    assert ex["input_ids"].numel() == min(128, third_start)
    assert enc.truncated == 1 and enc.skipped == {}
    # a long text-only sample spans rows when packed, is cut when not; an SFT sample whose answer lies
    # wholly past the cut has nothing to learn from: skipped
    assert enc({"key": "t", "text": words * 3, "image_bytes": []}, packed=True)["input_ids"].numel() > 128
    assert enc({"key": "t", "text": words * 3, "image_bytes": []})["input_ids"].numel() == 128
    sft = {"key": "sft", "messages": [{"role": "user", "content": words * 3}, {"role": "assistant", "content": "ok"}],
           "image_bytes": []}
    assert enc(sft) is None and enc.skipped == {"too_long": 1} and enc.truncated == 2
