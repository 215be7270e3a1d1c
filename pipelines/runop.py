"""`dsvl-data run-op`: one operator on real files, without Ray, for debugging and quick checks.

Sources take their input units (paths, URLs) from the arguments; transforms take image files or a
JSONL of sample rows. Writes `rows.jsonl`, `rejects.jsonl` and the images under `media/`.
"""

from __future__ import annotations

import json
import typing
from dataclasses import asdict
from pathlib import Path
from typing import Any

from operators.base import Operator, Source, get_operator
from operators.sample import Rejection, Sample, content_key
from pipelines.recipe import RecipeError, parse_override
from pipelines.runner import run_local

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


def _takes_list(annotation: Any) -> bool:
    """list[...] or an optional/union containing one."""
    return typing.get_origin(annotation) is list or any(
        typing.get_origin(a) is list for a in typing.get_args(annotation))


def _coerce(cls: type[Operator], values: dict[str, Any]) -> dict[str, Any]:
    """`--set hosts=a,b` for a list field gives ["a", "b"]."""
    out = dict(values)
    for k, v in values.items():
        field = cls.Config.model_fields.get(k)
        if field is None or not isinstance(v, str):
            continue
        if _takes_list(field.annotation):
            out[k] = [p for p in v.split(",") if p]
    return out


def build_operator(name: str, sets: list[str], inputs: list[str]) -> tuple[Operator, list[str]]:
    cls = get_operator(name)
    values: dict[str, Any] = {}
    for s in sets:
        path, value = parse_override(s)
        values[".".join(path)] = value
    values = _coerce(cls, values)
    if issubclass(cls, Source) and "inputs" in cls.Config.model_fields and "inputs" not in values and inputs:
        takes_list = _takes_list(cls.Config.model_fields["inputs"].annotation)
        if not takes_list and len(inputs) > 1:
            raise RecipeError(f"{name} takes one input (a file or folder), got {len(inputs)}")
        values["inputs"] = list(inputs) if takes_list else inputs[0]
        inputs = []
    config = cls.parse_config(values, prefix="--set")
    return cls(config), inputs


def load_samples(paths: list[str]) -> list[Sample]:
    samples: list[Sample] = []
    for p in map(Path, paths):
        if not p.exists():
            raise RecipeError(f"input {p} does not exist")
        if p.suffix.lower() in IMAGE_SUFFIXES:
            data = p.read_bytes()
            s = Sample(content_key("file", data), str(p), "file", "image", "document_ocr", [2],
                       provenance={"input": str(p), "path": str(p)})
            s.add_image(data, p.suffix.lower().lstrip(".").replace("jpeg", "jpg"))
            samples.append(s)
        elif p.suffix == ".jsonl":
            for n, line in enumerate(p.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                d = json.loads(line)
                files = d.pop("image_files", [])
                imgs = [Path(f).read_bytes() for f in files]
                samples.append(Sample.from_json(d, imgs, d.get("provenance", {}).get("input", f"{p}:{n}")))
        else:
            raise RecipeError(f"input {p}: expected an image file or a .jsonl of sample rows")
    return samples


def run_op(name: str, inputs: list[str], out: Path, sets: list[str]) -> tuple[int, int]:
    op, rest = build_operator(name, sets, inputs)
    if isinstance(op, Source):
        results = op.run(rest or None)
    else:
        results = [it for it in run_local(op, list(load_samples(rest))) if isinstance(it, (Sample, Rejection))]
    out.mkdir(parents=True, exist_ok=True)
    media = out / "media"
    n_rows = n_rej = 0
    with open(out / "rows.jsonl", "w") as rows, open(out / "rejects.jsonl", "w") as rejects:
        for it in results:
            if isinstance(it, Sample):
                d = it.to_json()
                files = []
                for nm, data in zip(it.images, it.image_bytes):
                    media.mkdir(exist_ok=True)
                    f = media / f"{it.key}.{nm}"
                    f.write_bytes(data)
                    files.append(str(f))
                d["image_files"] = files
                rows.write(json.dumps(d, ensure_ascii=False) + "\n")
                n_rows += 1
            else:
                rejects.write(json.dumps(asdict(it), ensure_ascii=False) + "\n")
                n_rej += 1
    op.teardown()
    return n_rows, n_rej
