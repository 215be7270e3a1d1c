"""`quality.fasttext`: score text with a trained fastText quality classifier, and train one.

Training reads positive and negative texts (files or catalog queries, see `load_texts`), writes a
fastText supervised model, and reports its held-out accuracy; the model's sha256 goes into provenance.
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from operators.base import Operator, OperatorConfig, Reject, Resources, register
from operators.quality.text import file_sha256, load_fasttext, one_line, predict, sample_text
from operators.sample import Rejection, Sample

log = logging.getLogger(__name__)

POSITIVE = "__label__good"
NEGATIVE = "__label__bad"


@register("quality.fasttext")
class QualityScorer(Operator):
    """Put P(good) from a fastText classifier into `scores[score_name]`; optionally reject below."""

    version = "1"
    resources = Resources(actor=True, workers=1, batch_size=256)

    class Config(OperatorConfig):
        model_path: str = Field(..., description="fastText model from `dsvl-data quality train`")
        score_name: str = Field("quality", description="key in sample.scores")
        positive_label: str = Field(POSITIVE, description="the label whose probability is the score")
        min_score: float | None = Field(None, ge=0.0, le=1.0, description="reject samples scoring below")

    config: Config

    def setup(self) -> None:
        path = Path(self.config.model_path)
        if not path.is_file():
            raise FileNotFoundError(f"quality.fasttext: no model at {path}")
        self.model = load_fasttext(path)
        self.model_sha256 = file_sha256(path)
        labels = set(self.model.get_labels())
        if self.config.positive_label not in labels:
            raise ValueError(f"quality.fasttext: label {self.config.positive_label!r} not in {sorted(labels)}")

    def score(self, text: str) -> float:
        """Probability of the positive label (all labels are asked for, so none is cut off)."""
        for prob, label in predict(self.model, text, k=-1):
            if label == self.config.positive_label:
                return float(prob)
        return 0.0

    def process(self, sample: Sample) -> Iterable[Sample | Rejection]:
        text = sample_text(sample.text, sample.messages)
        if not text:
            return [sample]  # nothing to score; text filters decide about empty samples
        s = self.score(text)
        sample.scores[self.config.score_name] = round(s, 4)
        sample.provenance.setdefault("models", {})[self.name] = self.model_sha256
        if self.config.min_score is not None and s < self.config.min_score:
            raise Reject("low_quality", f"{self.config.score_name}={s:.3f} < {self.config.min_score}")
        return [sample]


# --- training ---------------------------------------------------------------------------------


@dataclass
class TrainResult:
    path: str
    sha256: str
    n_positive: int
    n_negative: int
    n_test: int
    accuracy: float  # on the held-out split, at a 0.5 threshold


def load_texts(path: str | Path) -> list[str]:
    """Texts from a file: `.jsonl` (fields text or messages, one sample per line), else one per line."""
    p = Path(path)
    out: list[str] = []
    with open(p, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if p.suffix == ".jsonl":
                d = json.loads(line)
                line = sample_text(d.get("text"), d.get("messages"))
            if line:
                out.append(line)
    return out


def catalog_texts(catalog: str | Path, where: str, limit: int | None = None) -> list[str]:
    """Texts of catalog samples matching a SQL condition over the `samples` table (e.g. "source='pdf'")."""
    import duckdb

    con = duckdb.connect(str(catalog), read_only=True)
    try:
        q = f"SELECT json FROM samples WHERE {where} ORDER BY key" + (f" LIMIT {int(limit)}" if limit else "")
        rows = con.sql(q).fetchall()
    finally:
        con.close()
    texts = []
    for (js,) in rows:
        d = json.loads(js)
        t = sample_text(d.get("text"), d.get("messages"))
        if t:
            texts.append(t)
    return texts


def train_quality_classifier(
    positives: list[str],
    negatives: list[str],
    out: str | Path,
    *,
    epoch: int = 10,
    lr: float = 0.5,
    word_ngrams: int = 2,
    dim: int = 32,
    bucket: int = 200_000,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> TrainResult:
    """Train a good/bad fastText classifier; one thread and a fixed seed make it reproducible.

    `bucket` sizes the n-gram hash table (model bytes ~ bucket * dim * 4; fastText's 2M default is 256 MB).
    """
    import fasttext

    if not positives or not negatives:
        raise ValueError(f"need positive and negative texts (got {len(positives)} and {len(negatives)})")
    rows = [(POSITIVE, t) for t in positives] + [(NEGATIVE, t) for t in negatives]
    random.Random(seed).shuffle(rows)
    n_test = int(len(rows) * test_fraction) if len(rows) >= 20 else 0
    test, train = rows[:n_test], rows[n_test:]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text("".join(f"{lab} {one_line(t)}\n" for lab, t in train), encoding="utf-8")
        model = fasttext.train_supervised(
            input=str(train_file), epoch=epoch, lr=lr, wordNgrams=word_ngrams, dim=dim,
            bucket=bucket, minCount=1, thread=1, seed=seed, verbose=0, loss="softmax",
        )
    tmp_out = out.with_name(out.name + ".tmp")
    model.save_model(str(tmp_out))
    os.replace(tmp_out, out)
    correct = 0
    for lab, t in test:
        (_, pred), = predict(model, t, k=1)
        correct += pred == lab
    acc = correct / len(test) if test else float("nan")
    log.info("quality classifier: %d pos, %d neg, held-out accuracy %.3f", len(positives), len(negatives), acc)
    return TrainResult(str(out), file_sha256(out), len(positives), len(negatives), len(test), acc)
