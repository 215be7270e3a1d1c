"""`dsvl-data` commands for the model part: `model info` (parameter counts) and `chat` (one answer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

model_app = typer.Typer(help="Inspect the DeepSeek-VL model presets.", no_args_is_help=True)


@model_app.command("info")
def info(
    preset: Annotated[str, typer.Option(help="Model preset: tiny, 1.3b or 7b.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Parameter counts per part, computed on the meta device (nothing is allocated)."""
    import torch

    from model.config import PRESETS, VLMConfig
    from model.vlm import MultiModalityCausalLM, param_counts

    if preset not in PRESETS:
        raise typer.BadParameter(
            f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}", param_hint="--preset"
        )
    cfg = VLMConfig.from_name(preset)
    with torch.device("meta"):
        counts = param_counts(MultiModalityCausalLM(cfg))
    if as_json:
        typer.echo(json.dumps({"preset": preset, "image_tokens": cfg.image_tokens, "params": counts}))
        return
    table = Table(title=f"DeepSeek-VL {preset}: parameters ({cfg.image_tokens} tokens per image)")
    table.add_column("part")
    table.add_column("parameters", justify="right")
    table.add_column("millions", justify="right")
    for part, n in counts.items():
        table.add_row(part, f"{n:,}", f"{n / 1e6:.1f}")
    Console().print(table)


def chat(
    question: Annotated[str, typer.Argument(help="The question about the image.")],
    checkpoint: Annotated[
        Path, typer.Option(help="Checkpoint directory (config.json, weights, tokenizer.json).")
    ],
    image: Annotated[list[Path], typer.Option(help="Image file; repeat for several images.")],
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens to generate.")] = 128,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 means greedy.")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 1.0,
    repetition_penalty: Annotated[float, typer.Option(help="Penalty for tokens already seen.")] = 1.1,
    seed: Annotated[int, typer.Option(help="Random seed for sampling.")] = 0,
    dtype: Annotated[str, typer.Option(help="Weights dtype: float32 or bfloat16.")] = "float32",
    device: Annotated[str, typer.Option(help="Torch device, e.g. cpu or cuda.")] = "cpu",
) -> None:
    """Answer one question about one or more images with a trained checkpoint."""
    import torch
    from PIL import Image, UnidentifiedImageError

    from model.checkpoint import load_model
    from model.generation import SamplingConfig
    from model.processor import PLACEHOLDER, VLChatProcessor
    from model.tokenizer import VLTokenizer

    for p in image:
        if not p.is_file():
            raise typer.BadParameter(f"no such file: {p}", param_hint="--image")
    try:
        images = [Image.open(p) for p in image]
        for im in images:
            im.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise typer.BadParameter(f"unreadable image: {e}", param_hint="--image") from e
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    if dtype not in dtypes:
        raise typer.BadParameter(f"unknown dtype {dtype!r}; known: {', '.join(dtypes)}", param_hint="--dtype")
    for need in ("config.json", "tokenizer.json"):
        if not (checkpoint / need).is_file():
            raise typer.BadParameter(f"no {need} in {checkpoint}", param_hint="--checkpoint")
    model = load_model(checkpoint, device=device, dtype=dtypes[dtype])
    tok = VLTokenizer.from_file(checkpoint / "tokenizer.json")
    proc = VLChatProcessor(tok, model.config)
    # one placeholder per image, in front of the question, unless the user placed them already
    n_ph = len(PLACEHOLDER.findall(question))
    if n_ph and n_ph != len(images):
        raise typer.BadParameter(
            f"{n_ph} <image> placeholders but {len(images)} images", param_hint="--image"
        )
    prompt = question if n_ph else "<image>\n" * len(images) + question
    batch = {
        k: v.to(device) if v is not None else None
        for k, v in proc([[{"role": "user", "content": prompt}]], [images], train=False).items()
    }
    sampling = SamplingConfig(
        max_new_tokens=max_new_tokens,
        do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else 1.0,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
    )
    gen = torch.Generator(device=device).manual_seed(seed)
    out = model.generate(
        batch["input_ids"],
        batch["attention_mask"],
        batch["pixel_values"],
        batch["images_seq_mask"],
        batch["images_emb_mask"],
        sampling=sampling,
        eos_id=tok.eos_id,
        pad_id=tok.pad_id,
        generator=gen,
    )
    typer.echo(proc.decode(out[0]).strip())


def register(app: typer.Typer) -> None:
    """Add this part's commands to the main app."""
    app.add_typer(model_app, name="model")
    app.command("chat")(chat)
