"""The taxonomy tagger: rules (the sample's source task, keywords) plus a fastText classifier trained on
annotators' labels. Each tag is {"id", "confidence", "source"}; the first tag is the sample's primary one.

`train` fits the classifier on labelled texts and reports held-out accuracy per main category.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from taxonomy.schema import Taxonomy

log = logging.getLogger(__name__)

LABEL = "__label__"
_TOKEN = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)
TASK_CONFIDENCE = 0.9


def sample_text(messages: list[dict[str, str]] | None, text: str | None = None) -> str:
    """What the tagger reads: the user turns (the use case lives in the question), else the plain text."""
    if messages:
        return "\n".join(m.get("content", "") for m in messages if m.get("role") == "user")
    return text or ""


def normalize(text: str) -> str:
    """One line of lower-case tokens, image placeholders removed (fastText reads whitespace tokens)."""
    text = text.replace("<image>", " ").lower()
    return " ".join(_TOKEN.findall(text))


class Tagger:
    """Assign labelable taxonomy ids to a sample. Rules always run; the fastText model when given."""

    def __init__(self, tax: Taxonomy, model_path: str | Path | None = None, k: int = 2,
                 threshold: float = 0.3, keyword_confidence: float = 0.5):
        self.tax = tax
        self.k = k
        self.threshold = threshold
        self.keyword_confidence = keyword_confidence
        nodes = tax.labelable()
        self.by_task: dict[str, list[str]] = defaultdict(list)
        for n in nodes:
            for t in n.tasks:
                self.by_task[t].append(n.id)
        # one regex per node; word boundaries so "map" does not fire on "bitmap"
        self.keyword_re = {
            n.id: re.compile(r"(?<!\w)(" + "|".join(re.escape(k.lower()) for k in n.keywords) + r")(?!\w)")
            for n in nodes if n.keywords}
        self.model = None
        if model_path is not None:
            import contextlib
            import io

            import fasttext  # heavy-ish import only when a model is used

            with contextlib.redirect_stderr(io.StringIO()):  # its API-change warning on every load
                self.model = fasttext.load_model(str(model_path))

    def predict(self, text: str, k: int | None = None, threshold: float | None = None) -> list[tuple[str, float]]:
        """fastText (id, probability) pairs, best first; ids resolved through aliases."""
        if self.model is None:
            return []
        line = normalize(text)
        if not line:
            return []
        k = self.k if k is None else k
        thr = self.threshold if threshold is None else threshold
        out = []
        # fasttext-wheel under numpy 2: only the raw `f.predict` with "strict" gives correct probabilities
        for prob, label in self.model.f.predict(line + "\n", k, thr, "strict"):
            rid = self.tax.resolve(label[len(LABEL):])
            if rid:
                out.append((rid, float(prob)))
        return out

    def keyword_hits(self, text: str) -> dict[str, int]:
        low = text.lower()
        hits = {}
        for nid, rx in self.keyword_re.items():
            n = len(set(rx.findall(low)))
            if n:
                hits[nid] = n
        return hits

    def tag(self, text: str, task: str = "", existing: list[dict[str, Any]] | None = None,
            turns: list[str] | None = None) -> list[dict[str, Any]]:
        """Tags best first (ties: first found). Existing tags (set by the source that made the sample) are
        kept, resolved through aliases; rules and the model add to them; per id the highest confidence
        wins. Keyword rules run per user turn (`turns`), so each question of a conversation counts."""
        best: dict[str, dict[str, Any]] = {}
        order: dict[str, int] = {}

        def put(id: str, conf: float, source: str) -> None:
            order.setdefault(id, len(order))
            if id not in best or conf > best[id]["confidence"]:
                best[id] = {"id": id, "confidence": round(conf, 4), "source": source}

        for t in existing or []:
            rid = self.tax.resolve(t["id"] if isinstance(t, dict) else str(t))
            if rid:
                conf = float(t.get("confidence", 1.0)) if isinstance(t, dict) else 1.0
                put(rid, conf, t.get("source", "source") if isinstance(t, dict) else "source")
        for nid in self.by_task.get(task, []):
            put(nid, TASK_CONFIDENCE, "rule:task")
        for nid, prob in self.predict(text):
            put(nid, prob, "fasttext")
        for turn in turns if turns is not None else [text]:
            hits = self.keyword_hits(turn)
            if hits:
                top = max(hits.values())
                for nid, n in hits.items():
                    if n == top:  # only the strongest matches; single generic words are weak evidence
                        put(nid, min(0.8, self.keyword_confidence + 0.1 * (n - 1)), "rule:keyword")
        return sorted(best.values(), key=lambda t: (-t["confidence"], order[t["id"]]))


# --- training ------------------------------------------------------------------------------------

def split(key: str, seed: int, holdout: float) -> bool:
    """True when `key` is held out: a stable hash, so the split survives new labels being added."""
    h = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big")
    return h / 2**64 < holdout


def train(examples: list[tuple[str, str, list[str]]], tax: Taxonomy, out: str | Path, holdout: float = 0.2,
          seed: int = 0, epoch: int = 30, lr: float = 0.5, dim: int = 32) -> dict[str, Any]:
    """Train the fastText tagger on (key, text, [labelable ids]) and save it to `out`.

    Returns held-out accuracy: top-1 leaf accuracy and main-category accuracy, overall and per main
    category of the true label. Labels are resolved through aliases; retired ids are dropped.
    """
    import fasttext

    train_lines, test = [], []
    dropped = 0
    for key, text, ids in examples:
        ids = [r for r in (tax.resolve(i) for i in ids) if r]
        line = normalize(text)
        if not ids or not line:
            dropped += 1
            continue
        if split(key, seed, holdout):
            test.append((line, ids))
        else:
            train_lines.append(" ".join(LABEL + i for i in ids) + " " + line)
    if not train_lines:
        raise ValueError("no labelled examples to train on")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".txt", dir=out.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(train_lines) + "\n")
    try:
        # thread=1 + a seed make training reproducible; small bucket/dim keep the model a few MB
        model = fasttext.train_supervised(input=tmp, epoch=epoch, lr=lr, dim=dim, wordNgrams=2, minCount=1,
                                          bucket=50_000, thread=1, seed=seed, verbose=0, loss="softmax")
    finally:
        os.unlink(tmp)
    tmp_model = out.with_suffix(out.suffix + ".tmp")
    model.save_model(str(tmp_model))
    os.replace(tmp_model, out)

    per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # main -> [n, leaf ok, main ok]
    for line, ids in test:
        pred = model.f.predict(line + "\n", 1, 0.0, "strict")
        pid = tax.resolve(pred[0][1][len(LABEL):]) if pred else None
        main = tax.main_of(ids[0])
        c = per[main]
        c[0] += 1
        c[1] += int(pid in ids)
        c[2] += int(pid is not None and tax.main_of(pid) in {tax.main_of(i) for i in ids})
    n = sum(c[0] for c in per.values())
    report = {
        "train": len(train_lines), "heldout": n, "dropped": dropped, "labels": len(model.labels),
        "leaf_accuracy": round(sum(c[1] for c in per.values()) / n, 4) if n else None,
        "main_accuracy": round(sum(c[2] for c in per.values()) / n, 4) if n else None,
        "per_main": {m: {"n": c[0], "leaf_accuracy": round(c[1] / c[0], 4), "main_accuracy": round(c[2] / c[0], 4)}
                     for m, c in sorted(per.items())},
        "model": str(out),
    }
    log.info("tagger trained on %d, held-out leaf accuracy %s", len(train_lines), report["leaf_accuracy"])
    return report


def examples_from_labels(catalog_path: str | Path, annotations: str | Path | None = None
                         ) -> list[tuple[str, str, list[str]]]:
    """(key, text, ids) for every sample whose current decision is a label (one joined query)."""
    import json

    from taxonomy.catalog import LabelStore, catalog_file

    cat = catalog_file(catalog_path)
    store = LabelStore(annotations or cat.parent / "annotations.duckdb")
    latest = [r for r in store.latest() if r["action"] == "label" and r["labels"]]
    if not latest:
        return []
    import duckdb
    import pyarrow as pa

    with duckdb.connect(str(cat), read_only=True) as con:
        con.register("wanted", pa.table({"key": [r["key"] for r in latest]}))
        js = dict(con.execute("SELECT s.key, any_value(s.json) FROM samples s JOIN wanted USING (key) "
                              "GROUP BY s.key").fetchall())
    out = []
    for r in latest:
        if r["key"] in js:
            d = json.loads(js[r["key"]])
            out.append((r["key"], sample_text(d.get("messages"), d.get("text")), list(r["labels"])))
    return out
