"""`dsvl-data train CONFIG`: one training stage on the shards of a build (thin: parse, call train.loop)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated

import typer


def train(
    config: Annotated[str, typer.Argument(help="Stage YAML, or a preset name under train/configs/ "
                                               "(stage1, stage2, stage3, tiny-stage1, tiny-stage2, ...).")],
    data: Annotated[Path, typer.Option(help="Build output holding shards/<stream>/ (e.g. out/demo).")] = Path("out/demo"),
    steps: Annotated[int | None, typer.Option(help="Optimizer steps (default: the config's).", min=1)] = None,
    out: Annotated[Path, typer.Option(help="Where checkpoints, metrics.jsonl and tb/ go.")] = Path("out/train"),
    resume: Annotated[bool, typer.Option(help="Continue from the latest checkpoint under --out.")] = False,
    init_from: Annotated[Path | None, typer.Option(help="Start from these weights: a checkpoint, or the --out "
                                                        "of the previous stage (its latest checkpoint).")] = None,
    threads: Annotated[int, typer.Option(help="CPU threads for torch (0: torch's default).", min=0)] = 0,
) -> None:
    """Train one stage (run under torchrun for DDP/FSDP); rank 0 logs JSONL and TensorBoard scalars."""
    import torch

    from train.config import load_config
    from train.distributed import teardown
    from train.loop import train as run_training

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if threads:
        torch.set_num_threads(threads)
    try:
        cfg = load_config(config, steps)
    except (OSError, ValueError, TypeError) as e:
        raise typer.BadParameter(str(e), param_hint="CONFIG") from e
    if init_from is not None:
        if not init_from.exists():
            raise typer.BadParameter(f"no such checkpoint or run: {init_from}", param_hint="--init-from")
        cfg = cfg.model_copy(update={"init_from": str(init_from)})
    if not (data / "shards").is_dir():
        raise typer.BadParameter(f"no shards/ under {data}; build one first (make demo)", param_hint="--data")
    try:
        result = run_training(cfg, data, out, resume=resume)
    except FileNotFoundError as e:  # a stream the stage needs was not built, a missing tokenizer or checkpoint
        raise typer.BadParameter(str(e), param_hint="--data / config") from e
    finally:
        teardown()
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        summary = {k: result[k] for k in ("steps", "final_loss", "checkpoint", "skipped", "truncated")}
        summary["val"] = result["val"][-1] if result["val"] else {}
        typer.echo(json.dumps(summary, indent=1))


def register(app: typer.Typer) -> None:
    """Add this part's commands to the main app."""
    app.command("train")(train)
