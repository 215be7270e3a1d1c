"""Recipes: the YAML that names sources, transforms and the assembly of a build.

Loading resolves named parameters (`${inputs}`), applies `--set key.path=value` overrides and
validates everything (recipe keys, operator names, every operator config) before any work starts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from operators.base import (
    AssemblyStep,
    Operator,
    OperatorConfig,
    format_validation_error,
    get_assembly_step,
    get_operator,
)
from operators.sample import PRETRAIN_CATEGORIES, SFT_CATEGORIES


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the key and what is allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class StepSpec(_Strict):
    op: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    workers: int | None = Field(None, ge=1, description="override the operator's declared pool size")
    batch_size: int | None = Field(None, ge=1)


class SourceSpec(StepSpec):
    steps: list[StepSpec] = Field(default_factory=list, description="transforms for this source only")


class AssemblyStepSpec(_Strict):
    step: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


class MixtureSpec(_Strict):
    """Category shares for one training stage; `total` samples, or as many as the data allows."""

    ratios: dict[str, float]
    total: int | None = Field(None, ge=1)
    max_repeat: float = Field(1.0, ge=1.0, description="up-sampling cap per sample")

    @field_validator("ratios")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("at least one category")
        for k, r in v.items():
            if r < 0:
                raise ValueError(f"ratio of {k!r} is negative")
        if sum(v.values()) <= 0:
            raise ValueError("ratios sum to zero")
        return v


# Spec Table 1 (stage 2) and Table 2 (stage 3); stage 1: 1.25M captions + 2.5M document-OCR pairs.
DEFAULT_MIXTURE: dict[str, dict[str, float]] = {
    "stage1": {"caption": 1.25, "document_ocr": 2.5},
    "stage2": {
        "interleaved": 13.1, "caption": 11.1, "table_chart": 2.1, "web_code": 0.4,
        "scene_text_ocr": 1.2, "document_ocr": 2.1, "text_only": 70.0,
    },
    "stage3": {
        "inhouse_taxonomy": 10.5, "general_instruct": 35.5, "table_chart": 4.1, "web_code": 2.0,
        "text_sft": 47.9,
    },
}
STAGE_CATEGORIES = {"stage1": PRETRAIN_CATEGORIES, "stage2": PRETRAIN_CATEGORIES, "stage3": SFT_CATEGORIES}


class ShardSpec(_Strict):
    maxcount: int = Field(1000, ge=1)
    maxsize_mb: float = Field(256.0, gt=0)


class AssemblySpec(_Strict):
    seed: int = 0
    steps: list[AssemblyStepSpec] = Field(default_factory=list)
    mixture: dict[str, MixtureSpec] = Field(
        default_factory=lambda: {k: MixtureSpec(ratios=v) for k, v in DEFAULT_MIXTURE.items()}
    )
    missing_categories: str = Field("renormalize", pattern="^(renormalize|error)$")
    shards: ShardSpec = Field(default_factory=ShardSpec)

    @model_validator(mode="after")
    def _known_stages(self) -> AssemblySpec:
        for stage, mix in self.mixture.items():
            if stage not in STAGE_CATEGORIES:
                raise ValueError(f"unknown stage {stage!r}; allowed: {', '.join(STAGE_CATEGORIES)}")
            allowed = STAGE_CATEGORIES[stage]
            for cat in mix.ratios:
                if cat not in allowed:
                    raise ValueError(f"{stage}: unknown category {cat!r}; allowed: {', '.join(allowed)}")
        return self


class BuildSpec(_Strict):
    """How the driver writes the pool: smaller parts commit progress more often (resume loses less)."""

    flush_rows: int = Field(2000, ge=1)
    flush_mb: float = Field(64.0, gt=0)


class RecipeModel(_Strict):
    name: str
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    sources: list[SourceSpec] = Field(min_length=1)
    steps: list[StepSpec] = Field(default_factory=list)
    assembly: AssemblySpec = Field(default_factory=AssemblySpec)
    build: BuildSpec = Field(default_factory=BuildSpec)


class BoundStep:
    """A recipe step with its operator class and validated config."""

    def __init__(self, path: str, spec: StepSpec, cls: type[Operator], config: OperatorConfig):
        self.path = path
        self.spec = spec
        self.cls = cls
        self.config = config

    @property
    def name(self) -> str:
        return self.cls.name

    def build(self) -> Operator:
        return self.cls(self.config)


class Recipe:
    """A validated recipe: bound sources (each with its own steps), shared steps and assembly."""

    def __init__(self, model: RecipeModel, raw: dict[str, Any], path: str):
        self.model = model
        self.raw = raw
        self.path = path
        self.sources: list[tuple[BoundStep, list[BoundStep]]] = []
        for i, src in enumerate(model.sources):
            bound = _bind(f"sources.{i}", src)
            chain = [_bind(f"sources.{i}.steps.{j}", s) for j, s in enumerate(src.steps)]
            self.sources.append((bound, chain))
        self.steps = [_bind(f"steps.{j}", s) for j, s in enumerate(model.steps)]
        self.assembly_steps: list[AssemblyStep] = []
        for j, a in enumerate(model.assembly.steps):
            key = f"assembly.steps.{j}"
            try:
                cls = get_assembly_step(a.step)
            except KeyError as e:
                raise RecipeError(f"{key}.step: {e.args[0]}") from None
            try:
                self.assembly_steps.append(cls(cls.Config(**a.with_)))
            except ValidationError as e:
                raise RecipeError(format_validation_error(f"{key}.with", e, cls.Config)) from None

    @property
    def name(self) -> str:
        return self.model.name


def _bind(path: str, spec: StepSpec) -> BoundStep:
    try:
        cls = get_operator(spec.op)
    except KeyError as e:
        raise RecipeError(f"{path}.op: {e.args[0]}") from None
    try:
        config = cls.Config(**spec.with_)
    except ValidationError as e:
        raise RecipeError(format_validation_error(f"{path}.with", e, cls.Config)) from None
    return BoundStep(path, spec, cls, config)


_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _substitute(value: Any, params: dict[str, Any], where: str) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, params, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, params, f"{where}.{i}") for i, v in enumerate(value)]
    if isinstance(value, str):
        whole = _REF.fullmatch(value)
        for name in _REF.findall(value):
            if name not in params:
                known = ", ".join(params) or "(none declared)"
                raise RecipeError(f"{where}: unknown parameter ${{{name}}}; recipe params: {known}")
        if whole:  # keep the parameter's type (list, int) when it is the whole value
            return params[whole.group(1)]
        return _REF.sub(lambda m: str(params[m.group(1)]), value)
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise RecipeError(f"--set {text!r}: expected KEY=VALUE (e.g. inputs=/data/pdfs)")
    key, value = text.split("=", 1)
    if not key:
        raise RecipeError(f"--set {text!r}: empty key")
    try:
        parsed = yaml.safe_load(value) if value != "" else ""
    except yaml.YAMLError:
        parsed = value
    return key.split("."), parsed


def apply_override(raw: dict[str, Any], path: list[str], value: Any) -> None:
    params = raw.setdefault("params", {})
    if len(path) == 1 and path[0] in params:
        params[path[0]] = value
        return
    if len(path) == 1 and path[0] not in RecipeModel.model_fields:
        known = ", ".join(list(params) + list(RecipeModel.model_fields))
        raise RecipeError(f"--set {path[0]}: not a recipe parameter or key; known: {known}")
    node: Any = raw
    for i, part in enumerate(path[:-1]):
        where = ".".join(path[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise RecipeError(f"--set {where}: index out of range (list of {len(node)})")
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise RecipeError(f"--set {where}: cannot descend into a {type(node).__name__}")
    last = path[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise RecipeError(f"--set {'.'.join(path)}: index out of range")
        node[int(last)] = value
    else:
        node[last] = value


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"recipe {str(p)!r} not found")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise RecipeError(f"recipe {p}: invalid YAML: {e}") from None
    return recipe_from_dict(raw, str(p), overrides)


def recipe_from_dict(raw: dict[str, Any], path: str = "<dict>", overrides: list[str] | None = None) -> Recipe:
    if not isinstance(raw, dict):
        raise RecipeError(f"recipe {path}: top level must be a mapping")
    raw = yaml.safe_load(yaml.safe_dump(raw))  # deep copy, YAML types only
    for o in overrides or []:
        key, value = parse_override(o)
        apply_override(raw, key, value)
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise RecipeError("params: must be a mapping of name -> value")
    body = {k: v for k, v in raw.items() if k != "params"}
    resolved = _substitute(body, params, "recipe")
    resolved["params"] = params
    try:
        model = RecipeModel.model_validate(resolved)
    except ValidationError as e:
        raise RecipeError(_recipe_errors(e)) from None
    return Recipe(model, resolved, path)


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The recipe model class that holds the key at `loc` (to list the allowed keys)."""
    model: Any = RecipeModel
    parts = list(loc[:-1])
    for i, part in enumerate(parts):
        if isinstance(part, int) or model is None or (i > 0 and parts[i - 1] == "mixture"):
            continue  # list indices and stage names
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        args = [a for a in getattr(ann, "__args__", ()) if isinstance(a, type)]
        cands = [a for a in [ann, *args] if isinstance(a, type) and issubclass(a, BaseModel)]
        model = cands[0] if cands else (None if part != "mixture" else MixtureSpec)
    return model


def _recipe_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]).replace("with_", "with")
        if e["type"] == "extra_forbidden":
            model = _model_at(tuple(e["loc"]))
            allowed = f"; allowed keys: {', '.join(f.alias or n for n, f in model.model_fields.items())}" \
                if model else ""
            lines.append(f"{key}: unknown key{allowed}")
        else:
            lines.append(f"{key}: {e['msg']}")
    return "invalid recipe:\n" + "\n".join(lines)
