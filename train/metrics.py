"""Rank-0 metric logging: one JSON line per logged step (<out>/metrics.jsonl) and TensorBoard scalars."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


class MetricsLogger:
    """Writes on rank 0 only; the other ranks hold a logger that does nothing."""

    def __init__(self, out_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            out_dir.mkdir(parents=True, exist_ok=True)
            self.path = out_dir / "metrics.jsonl"
            self.writer = SummaryWriter(log_dir=str(out_dir / "tb"))

    def log(self, step: int, scalars: dict[str, float | int | str]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **scalars}, sort_keys=True) + "\n")
        for name, value in scalars.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(name, value, step)
        log.info("step %d %s", step, " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                               for k, v in scalars.items()))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
