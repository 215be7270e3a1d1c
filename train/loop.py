"""The training loop of one stage, top to bottom: set-up, data, resume, then per optimizer step pick the
modality, set the learning rate, accumulate micro-batches, clip, step, log, evaluate, checkpoint.

Runs as one process, or under torchrun with DDP or FSDP2; every schedule is a pure function of the step.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import torch
import torch.distributed as dist

from model.config import VLMConfig
from model.processor import VLChatProcessor
from model.tokenizer import VLTokenizer, train_tokenizer
from model.vlm import MultiModalityCausalLM
from train import checkpoint as ckpt
from train.config import TrainConfig, load_config
from train.distributed import DistEnv, all_sum, barrier, grad_sync, setup, wrap
from train.encode import SampleEncoder
from train.evaluate import load_mc_items, mc_perplexity, validation_loss
from train.loader import StreamDataset, StreamLoader, to_device, tokens_in
from train.metrics import MetricsLogger
from train.schedule import language_share_at, lr_at, step_plan
from train.shards import heldout_keys, stream_count, stream_shards

log = logging.getLogger(__name__)
# the loader's worker processes fork after the tokenizer has run; its own thread pool must stay off
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def train(config: TrainConfig | str | Path, data_dir: str | Path, out_dir: str | Path,
          steps: int | None = None, resume: bool = False) -> dict:
    """Train one stage on `<data_dir>/shards/`; write checkpoints and logs under `out_dir`."""
    cfg = config if isinstance(config, TrainConfig) else load_config(config, steps)
    if steps is not None and isinstance(config, TrainConfig):
        cfg = cfg.model_copy(update={"steps": steps})
    env = setup()
    out, data_dir = Path(out_dir), Path(data_dir)
    ckpt_dir = out / "checkpoints"
    last = ckpt.latest(ckpt_dir) if resume else None
    if resume and last is None:
        log.warning("--resume: no checkpoint under %s, starting from step 0", ckpt_dir)
    if last is None and env.is_main:
        _replace_previous_run(out)
    barrier()
    torch.manual_seed(cfg.data.seed)  # the same initial weights on every rank
    init_from = _resolve_init(cfg.init_from)

    if not any(stream_shards(data_dir, name) for name in cfg.data.streams.values()):
        raise FileNotFoundError(f"none of the streams {sorted(cfg.data.streams.values())} under {data_dir}/shards")

    # ---- tokenizer, model, optimizer -----------------------------------------------------------------
    tokenizer = _tokenizer(cfg, data_dir, out, env, init_from)
    preset = VLMConfig.from_name(cfg.model)
    vocab = max(preset.llm.vocab_size, -(-tokenizer.vocab_size // 64) * 64)
    model_cfg = VLMConfig.from_name(cfg.model, vocab_size=vocab)
    processor = VLChatProcessor(tokenizer, model_cfg)
    model = MultiModalityCausalLM(model_cfg)
    if init_from is not None:
        ckpt.load_weights(model, init_from)
        log.info("initial weights from %s", init_from)
    trainable = model.set_trainable(cfg.stage)
    model.set_grad_checkpointing(cfg.activation_checkpointing)
    model.to(env.device)
    bf16 = cfg.bf16 and env.device.type == "cuda"
    model = wrap(model, cfg.distributed, env, bf16=bf16)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.optim.lr, betas=cfg.optim.betas,
                            weight_decay=cfg.optim.weight_decay)

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    # ---- data -----------------------------------------------------------------------------------------
    encoder = SampleEncoder(processor, cfg.data.seq_len)
    streams = _train_streams(cfg, data_dir, encoder, model_cfg.image_tokens, env)
    accumulation = cfg.optim.accumulation
    if cfg.data.global_batch:
        accumulation = max(1, cfg.data.global_batch // (cfg.data.batch_size * env.world))
    mc_items = load_mc_items(cfg.eval.mc_path)

    # ---- resume ---------------------------------------------------------------------------------------
    step = 0
    if last is not None:
        state = ckpt.restore(last, model, opt)
        step = state["step"]
        loader_state = state["loader"]
        if len(loader_state) != env.world:
            log.warning("checkpoint from %d ranks, now %d: data restarts from the stream starts",
                        len(loader_state), env.world)
        else:
            for name, s in loader_state[env.rank].items():
                if name in streams:
                    streams[name].load_state_dict(s)
        log.info("resumed from %s at step %d", last, step)

    logger = MetricsLogger(out, env.is_main)
    if env.is_main:
        logger.log(step, {"trainable_params": sum(trainable.values()), "accumulation": accumulation,
                          "world": env.world})
    history: dict[str, list] = {"loss": [], "modality": [], "val": []}

    def evaluate(at: int) -> None:
        model.eval()
        scalars: dict[str, float] = {}
        for modality, name in cfg.data.streams.items():
            val = _val_batches(cfg, data_dir, name, encoder, model_cfg.image_tokens)
            if val is not None:
                loss, n = validation_loss(model, val, cfg.eval.batches, env.device, autocast)
                if n:
                    scalars[f"val/{modality}_loss"] = loss
        if mc_items:
            mc = mc_perplexity(model, mc_items, encoder, tokenizer.pad_id, model_cfg.image_tokens,
                               env.device, autocast)
            scalars.update({f"val/{k}": v for k, v in mc.items()})
        model.train()
        history["val"].append({"step": at, **scalars})
        logger.log(at, scalars)

    if step == 0:
        evaluate(0)

    # ---- the loop -------------------------------------------------------------------------------------
    model.train()
    t_last, tokens_since = time.perf_counter(), 0
    while step < cfg.steps:
        modality, sft = step_plan(step, cfg.mixing, cfg.data.seed)
        name = _pick(streams, modality, sft)
        lr = lr_at(step, cfg.optim, cfg.steps)
        for group in opt.param_groups:
            group["lr"] = lr
        step_loss = 0.0
        for micro in range(accumulation):
            batch = to_device(next(streams[name]), env.device)
            tokens_since += tokens_in(batch)
            with grad_sync(model, micro == accumulation - 1):
                with autocast():
                    loss = model(**batch).loss / accumulation
                loss.backward()
            step_loss += float(loss.detach())
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
        if hasattr(grad_norm, "full_tensor"):  # FSDP2 gives a DTensor
            grad_norm = grad_norm.full_tensor()
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1

        step_loss = all_sum([step_loss], env.device)[0] / env.world
        history["loss"].append(step_loss)
        history["modality"].append(name)
        if step % cfg.log_every == 0 or step == cfg.steps:
            dt = time.perf_counter() - t_last
            logger.log(step, {"train/loss": step_loss, f"train/loss_{name}": step_loss, "train/lr": lr,
                              "train/grad_norm": float(grad_norm), "train/stream": name,
                              "train/language_share": language_share_at(step - 1, cfg.mixing),
                              "train/tokens_per_s": tokens_since * env.world / max(dt, 1e-9)})
            t_last, tokens_since = time.perf_counter(), 0
        if step % cfg.eval.every == 0 or step == cfg.steps:
            evaluate(step)
        if step % cfg.checkpoint.every == 0 or step == cfg.steps:
            loader_state = {n: s.state_dict() for n, s in streams.items()}
            gathered = [loader_state]
            if dist.is_initialized():
                gathered = [None] * env.world
                dist.all_gather_object(gathered, loader_state)
            ckpt.save(ckpt_dir, step, model, opt,
                      {"config": cfg.model_dump(mode="json"),
                       "loader": gathered}, cfg.checkpoint.keep_last, env.rank,
                      model_config=model_cfg.to_dict(), tokenizer=out / "tokenizer.json")
            barrier()

    logger.close()
    skipped: Counter[str] = Counter()
    truncated = 0
    for loader in streams.values():
        s, t = loader.counts()
        skipped.update(s)
        truncated += t
    if skipped:
        log.warning("training samples skipped on this rank: %s", dict(skipped))
    final = ckpt.latest(ckpt_dir)
    return {"steps": step, "losses": history["loss"], "streams": history["modality"], "val": history["val"],
            "checkpoint": str(final) if final else None, "skipped": dict(skipped), "truncated": truncated,
            "accumulation": accumulation,
            "final_loss": history["loss"][-1] if history["loss"] else math.nan}


def _replace_previous_run(out: Path) -> None:
    """A fresh run owns `out`: an earlier run's metrics, TensorBoard files, checkpoints and trained tokenizer
    would otherwise mix with this one's (and --resume would pick up a stale checkpoint)."""
    stale = [out / "metrics.jsonl", out / "tb", out / "checkpoints", out / "tokenizer.json"]
    stale = [p for p in stale if p.exists()]
    if stale:
        log.warning("fresh run in %s: replacing the previous run's %s", out, ", ".join(p.name for p in stale))
    for p in stale:
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def _resolve_init(init_from: str | None) -> Path | None:
    """A checkpoint directory, or a previous stage's run directory (its latest checkpoint)."""
    if not init_from:
        return None
    p = Path(init_from)
    found = ckpt.latest(p / "checkpoints") if (p / "checkpoints").is_dir() else p
    if found is None or not p.exists():
        raise FileNotFoundError(f"init_from {init_from}: no checkpoint there")
    return found


def _tokenizer(cfg: TrainConfig, data_dir: Path, out: Path, env: DistEnv, init_from: Path | None) -> VLTokenizer:
    """The configured tokenizer.json, else the previous stage's (init_from), else the one this run trained
    earlier, else train one on every stream of the build (so later stages can share it). A copy stays in
    `out` and goes into every checkpoint."""
    path = out / "tokenizer.json"
    given = cfg.tokenizer
    if not given and init_from is not None and (init_from / "tokenizer.json").exists():
        given = str(init_from / "tokenizer.json")  # token ids must match the weights
    if given:
        if env.is_main:
            out.mkdir(parents=True, exist_ok=True)
            VLTokenizer.from_file(given).save(path)
    elif env.is_main and not path.exists():
        root = data_dir / "shards"
        names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        shards = [s for name in names for s in stream_shards(data_dir, name)[:8]]
        if not shards:
            raise FileNotFoundError(f"no shards under {root}")
        out.mkdir(parents=True, exist_ok=True)
        train_tokenizer(shards, vocab_size=cfg.tokenizer_vocab, from_files=True).save(path)
        log.info("trained a %d-token BPE on %d shards -> %s", cfg.tokenizer_vocab, len(shards), path)
    barrier()
    return VLTokenizer.from_file(path)


@functools.cache
def _heldout(shards: tuple[str, ...], count: int, percent: float) -> frozenset[str] | None:
    return heldout_keys(list(shards), count, percent)  # scanned once per stream, not at every evaluation


def _dataset(cfg: TrainConfig, data_dir: Path, name: str, encoder: SampleEncoder, image_tokens: int, *,
             rank: int, world: int, split: str, packing: bool) -> StreamDataset:
    d = cfg.data
    shards = stream_shards(data_dir, name)
    heldout = _heldout(tuple(shards), stream_count(data_dir, name), d.heldout_percent)
    return StreamDataset(shards, encoder, batch_size=d.batch_size, seq_len=d.seq_len, pad_id=encoder.pad_id,
                         image_tokens=image_tokens, packing=packing, shuffle_buffer=d.shuffle_buffer,
                         seed=d.seed, rank=rank, world=world, split=split, heldout_percent=d.heldout_percent,
                         heldout=heldout)


def _train_streams(cfg: TrainConfig, data_dir: Path, encoder: SampleEncoder, image_tokens: int,
                   env: DistEnv) -> dict[str, StreamLoader]:
    """One loader per stream that exists: `<modality>` and, with an SFT share, `sft-<modality>`."""
    wanted = {m: (name, cfg.data.packing) for m, name in cfg.data.streams.items()}
    if cfg.mixing.sft_share > 0:
        # SFT samples are never packed: each keeps its own answer mask and row
        wanted.update({f"sft-{m}": (name, False) for m, name in cfg.data.sft_streams.items()})
    loaders = {}
    for key, (name, packing) in wanted.items():
        if stream_shards(data_dir, name):
            ds = _dataset(cfg, data_dir, name, encoder.fresh(), image_tokens, rank=env.rank, world=env.world,
                          split="train", packing=packing)
            loaders[key] = StreamLoader(ds, workers=cfg.data.workers)
    if not any(k in loaders for k in cfg.data.streams):
        raise FileNotFoundError(f"none of the streams {sorted(cfg.data.streams.values())} under {data_dir}/shards")
    return loaders


def _val_batches(cfg: TrainConfig, data_dir: Path, name: str, encoder: SampleEncoder, image_tokens: int):
    """The held-out samples of a stream, identical on every rank (sharded models need equal forwards)."""
    if not stream_shards(data_dir, name) or cfg.data.heldout_percent <= 0:
        return None
    return iter(_dataset(cfg, data_dir, name, encoder, image_tokens, rank=0, world=1, split="val",
                         packing=False))


def _pick(streams: dict[str, StreamLoader], modality: str, sft: bool) -> str:
    """The stream of this step; a stage without that stream (stage 1 has no text) uses what it has."""
    for name in ([f"sft-{modality}"] if sft else []) + [modality, "text", "multimodal"]:
        if name in streams:
            return name
    raise KeyError(f"no stream for {modality}")
