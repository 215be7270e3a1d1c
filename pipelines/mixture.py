"""Mixture selection: per training stage, pick samples so categories meet the recipe's shares.

A pure function of the candidate table and the seed: no clock, no global random state.
Each stage's selection is split into one stream per modality and shuffled with its own seed.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field

import pyarrow as pa

from pipelines.recipe import AssemblySpec, MixtureSpec, RecipeError


@dataclass
class StageReport:
    stage: str
    rows: list[dict] = field(default_factory=list)  # category, ratio, target, achieved, available
    missing: list[str] = field(default_factory=list)


@dataclass
class Selection:
    streams: dict[str, list[tuple[str, int]]]  # stream -> [(key, copy)] in shard order
    reports: list[StageReport]


def _rng(*parts: object) -> random.Random:
    seed = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))


def select(candidates: pa.Table, spec: AssemblySpec) -> Selection:
    d = candidates.select(["key", "category", "stage", "modality", "repeat"]).to_pydict()
    streams: dict[str, list[tuple[str, int]]] = {}
    reports = []
    for stage, mix in sorted(spec.mixture.items()):
        n = int(stage.removeprefix("stage"))
        units: dict[str, list[str]] = defaultdict(list)  # category -> keys, one entry per allowed copy
        modality: dict[str, str] = {}
        for key, cat, stages, mod, rep in zip(d["key"], d["category"], d["stage"], d["modality"], d["repeat"]):
            if n in stages and cat in mix.ratios and rep > 0:
                units[cat].extend([key] * rep)
                modality[key] = mod
        chosen, report = _stage_counts(stage, mix, units, spec)
        picked: list[str] = []
        for cat, count in chosen.items():
            pool = sorted(units[cat])
            _rng(spec.seed, stage, cat).shuffle(pool)
            cap = math.floor(len(pool) * mix.max_repeat)
            take = min(count, cap)
            picked.extend(pool[i % len(pool)] for i in range(take))
        copies: dict[str, int] = defaultdict(int)
        per_stream: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for key in sorted(picked):
            per_stream[f"{stage}-{modality[key]}"].append((key, copies[key]))
            copies[key] += 1
        for stream, items in sorted(per_stream.items()):
            _rng(spec.seed, stream).shuffle(items)
            streams[stream] = items
        reports.append(report)
    return Selection(streams, reports)


def _stage_counts(
    stage: str, mix: MixtureSpec, units: dict[str, list[str]], spec: AssemblySpec
) -> tuple[dict[str, int], StageReport]:
    total_ratio = sum(mix.ratios.values())
    shares = {c: r / total_ratio for c, r in mix.ratios.items() if r > 0}
    missing = sorted(c for c in shares if not units.get(c))
    report = StageReport(stage, missing=missing)
    if missing and spec.missing_categories == "error":
        raise RecipeError(f"assembly.mixture.{stage}: no samples for categories {', '.join(missing)}")
    present = {c: s for c, s in shares.items() if c not in missing}
    if not present:
        return {}, report
    norm = sum(present.values())
    present = {c: s / norm for c, s in present.items()}
    if mix.total is not None:
        total = mix.total
    else:  # as many as the scarcest category allows at its share
        total = min(math.floor(len(units[c]) * mix.max_repeat / s) for c, s in present.items())
    counts = {c: int(round(total * s)) for c, s in present.items()}
    for c, s in sorted(shares.items()):
        avail = len(units.get(c, []))
        achieved = min(counts.get(c, 0), math.floor(avail * mix.max_repeat))
        report.rows.append({"category": c, "ratio": round(s, 6), "target": counts.get(c, 0),
                            "achieved": achieved, "available": avail})
    return counts, report
