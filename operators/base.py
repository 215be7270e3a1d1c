"""The operator contract: typed config, declared resources, `setup()` per actor, a batch method.

Every operator is one class registered by name; recipes name it and set its config fields.
Operators run the same way called directly (tests, `run-op`) and inside Ray Data (the runner).
"""

from __future__ import annotations

import importlib
import logging
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from operators.sample import Done, InputUnit, Item, Rejection, Sample

log = logging.getLogger(__name__)


class OperatorConfig(BaseModel):
    """Base of every operator config: unknown keys are errors, values are validated at load."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(BaseModel):
    """What one copy of the operator needs. `actor=True` keeps state (browser, model) per worker."""

    model_config = ConfigDict(extra="forbid")
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_mb: int | None = None
    actor: bool = False
    workers: int = Field(1, ge=1, description="actor pool size (actors) or task concurrency cap")
    batch_size: int = Field(16, ge=1)


class Reject(Exception):
    """Raise inside `process`/`read` to reject the current unit with a reason (snake_case)."""

    def __init__(self, reason: str, detail: str = "", key: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.key = key


class SystematicError(RuntimeError):
    """The operator fails on every unit: a broken set-up, not bad input. Stops the build."""


_REGISTRY: dict[str, type[Operator]] = {}

# Modules imported on first lookup so that `@register` runs; heavy imports stay inside operators.
OPERATOR_MODULES = (
    "operators.text",
    "operators.charts",
    "operators.images",
    "operators.pdf",
    "operators.ocr",
    "operators.web",
    "operators.instruct",
    "operators.quality",
    "operators.dedup",
    "operators.filters",
    "operators.tagging",
)


def register(name: str) -> Callable[[type[Operator]], type[Operator]]:
    def deco(cls: type[Operator]) -> type[Operator]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"operator name {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


_IMPORT_ERRORS: dict[str, str] = {}


def _load_all() -> None:
    """Import every operator module once. A module that fails to import (say, an optional dependency
    missing on a slim install) is remembered and named when one of its operators is asked for."""
    for mod in OPERATOR_MODULES:
        if mod in _IMPORT_ERRORS:
            continue
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                _IMPORT_ERRORS[mod] = f"{type(e).__name__}: {e}"
        except Exception as e:
            _IMPORT_ERRORS[mod] = f"{type(e).__name__}: {e}"
            log.warning("operator module %s failed to import: %s", mod, e)


def registry() -> dict[str, type[Operator]]:
    _load_all()
    return dict(sorted(_REGISTRY.items()))


def get_operator(name: str) -> type[Operator]:
    ops = registry()
    if name not in ops:
        broken = "".join(f"; {m} failed to import ({err})" for m, err in _IMPORT_ERRORS.items())
        raise KeyError(f"unknown operator {name!r}; known operators: {', '.join(ops)}{broken}")
    return ops[name]


def format_validation_error(prefix: str, err: ValidationError, model: type[BaseModel]) -> str:
    """One line per problem, naming the recipe key and what is allowed."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        key = f"{prefix}.{loc}" if prefix else loc
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(model.model_fields) or "(none)"
            lines.append(f"{key}: unknown key; allowed keys: {allowed}")
        else:
            lines.append(f"{key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


class Operator(ABC):
    """Base class. Subclasses set `Config`, optionally `resources`, and implement `process`."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    Config: ClassVar[type[OperatorConfig]] = OperatorConfig
    resources: ClassVar[Resources] = Resources()
    # After this many leading units all fail with an unexpected error, the operator is broken.
    systematic_after: ClassVar[int] = 20

    def __init__(self, config: OperatorConfig | dict[str, Any] | None = None):
        if config is None or isinstance(config, dict):
            config = self.Config(**(config or {}))
        self.config = config
        self._ready = False
        self._seen = 0
        self._errors = 0

    @classmethod
    def parse_config(cls, values: dict[str, Any], prefix: str = "") -> OperatorConfig:
        try:
            return cls.Config(**values)
        except ValidationError as e:
            raise ValueError(format_validation_error(prefix, e, cls.Config)) from None

    def setup(self) -> None:
        """Load heavy state (browser, OCR session, model). Called once per worker, before work."""

    def teardown(self) -> None:
        """Release heavy state."""

    def ensure_setup(self) -> None:
        if not self._ready:
            self.setup()
            self._ready = True

    @abstractmethod
    def process(self, sample: Sample) -> Iterable[Sample | Rejection]:
        """Transform one sample into zero or more samples or rejections. May raise `Reject`."""

    def iter_batch(self, items: list[Item]) -> Iterator[Item]:
        """Run `process` on every sample, streaming; rejections and markers pass through in order."""
        self.ensure_setup()
        for it in items:
            if isinstance(it, Sample):
                yield from self._guarded(it.input, it.key, lambda s=it: self._stamped(self.process(s)))
            else:
                yield it

    def process_batch(self, items: list[Item]) -> list[Item]:
        return list(self.iter_batch(items))

    def _stamped(self, produced: Iterable[Sample | Rejection]) -> Iterator[Sample | Rejection]:
        for p in produced:
            if isinstance(p, Sample):
                p.record_operator(self.name, self.version)
            yield p

    def _guarded(
        self, input: str, key: str, fn: Callable[[], Iterable[Sample | Rejection]]
    ) -> list[Sample | Rejection]:
        """All of one unit's output, or one rejection: a transform's output for a sample is atomic."""
        out: list[Sample | Rejection] = []
        for p in self._guarded_iter(input, key, fn):
            if isinstance(p, Rejection) and p.operator == self.name and p.reason == "operator_error":
                return [p]
            out.append(p)
        return out

    def _guarded_iter(
        self, input: str, key: str, fn: Callable[[], Iterable[Sample | Rejection]]
    ) -> Iterator[Sample | Rejection]:
        """A unit's output as it is produced (a 1,000-page PDF never sits in memory whole); a failure
        midway ends the unit with a rejection after what it already produced."""
        self._seen += 1
        try:
            yield from fn()
        except Reject as r:
            yield Rejection(input, self.name, r.reason, r.detail, r.key or key)
        except Exception as e:  # per-unit failure: recorded, build goes on
            self._errors += 1
            if self._errors == self._seen and self._seen >= self.systematic_after:
                raise SystematicError(f"{self.name} failed on all of its first {self._seen} units: {e!r}") from e
            detail = f"{type(e).__name__}: {e}"[:500] + "\n" + traceback.format_exc(limit=3)[-1500:]
            log.debug("%s failed on %s: %s", self.name, key or input, e)
            yield Rejection(input, self.name, "operator_error", detail, key)


class Filter(Operator):
    """An operator that keeps or drops samples: `keep` returns True, or (False, reason[, detail])."""

    @abstractmethod
    def keep(self, sample: Sample) -> bool | tuple[bool, str] | tuple[bool, str, str]:
        ...

    def process(self, sample: Sample) -> Iterable[Sample | Rejection]:
        verdict = self.keep(sample)
        if verdict is True:
            return [sample]
        if verdict is False:
            return [Rejection(sample.input, self.name, "filtered", "", sample.key)]
        ok, reason, *detail = verdict
        if ok:
            return [sample]
        return [Rejection(sample.input, self.name, reason, detail[0] if detail else "", sample.key)]


class Source(Operator):
    """An operator that turns input units (paths, URLs, seeds) into samples.

    `list_inputs` runs on the driver and enumerates the units; `read` runs on workers, one unit at a
    time. Each unit ends with a `Done` marker so that a resumed build knows it is complete.
    """

    @abstractmethod
    def list_inputs(self) -> list[str]:
        """The input units, in a deterministic order. Raise ValueError when an input is missing."""

    @abstractmethod
    def read(self, input: str) -> Iterable[Sample | Rejection]:
        """All samples (and rejections of parts, e.g. pages) from one input unit. May raise `Reject`."""

    def process(self, sample: Sample) -> Iterable[Sample | Rejection]:
        return [sample]  # a source passes samples from upstream sources through unchanged

    def iter_batch(self, items: list[Item]) -> Iterator[Item]:
        """Input units are read (streamed, then a `Done` marker); samples from upstream go through
        `process`, so a source can also act as a transform (e.g. a renderer after a crawler)."""
        self.ensure_setup()
        for it in items:
            if isinstance(it, InputUnit):
                n = 0
                for p in self._guarded_iter(it.input, "", lambda u=it.input: self._stamped(self.read(u))):
                    n += 1
                    yield p
                if n == 0:  # an input with nothing in it is still accounted for in the ledger
                    n = 1
                    yield Rejection(it.input, self.name, "empty_input", "the input yielded no samples")
                yield Done(it.input, n)
            elif isinstance(it, Sample):
                yield from self._guarded(it.input, it.key, lambda s=it: self._stamped(self.process(s)))
            else:
                yield it

    def run(self, inputs: list[str] | None = None) -> list[Sample | Rejection]:
        """Read inputs directly, without Ray (tests, `run-op`)."""
        items: list[Item] = [InputUnit(u) for u in (inputs if inputs is not None else self.list_inputs())]
        return [it for it in self.process_batch(items) if isinstance(it, (Sample, Rejection))]


def run_operator(op: Operator, samples: list[Sample]) -> list[Sample | Rejection]:
    """Run a transform operator directly on samples, without Ray."""
    return [it for it in op.process_batch(list(samples)) if isinstance(it, (Sample, Rejection))]


# --- assembly steps ---------------------------------------------------------------------------
# Global steps (dedup, balancing) that see the whole sample pool at once. They receive the
# candidate table (one row per sample, catalog columns, see pipelines.pool.CANDIDATE_SCHEMA) and
# return the rows to keep (a `repeat` column > 1 up-samples) plus a rejection for every row removed.

_ASSEMBLY: dict[str, type[AssemblyStep]] = {}


class PoolReader(ABC):
    """Read access to the sample pool for assembly steps."""

    files: list[str]  # the pool's Parquet files (columns: see operators.sample.ROW_SCHEMA)

    @abstractmethod
    def iter_samples(self, keys: set[str] | None = None, with_images: bool = True) -> Iterator[Sample]:
        ...


class AssemblyStep(ABC):
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    Config: ClassVar[type[OperatorConfig]] = OperatorConfig

    def __init__(self, config: OperatorConfig | dict[str, Any] | None = None):
        if config is None or isinstance(config, dict):
            config = self.Config(**(config or {}))
        self.config = config

    @abstractmethod
    def run(self, candidates: Any, pool: PoolReader) -> tuple[Any, list[Rejection], dict[str, Any]]:
        """(candidates: pa.Table) -> (kept: pa.Table, removed: [Rejection], report: dict)."""


def register_assembly(name: str) -> Callable[[type[AssemblyStep]], type[AssemblyStep]]:
    def deco(cls: type[AssemblyStep]) -> type[AssemblyStep]:
        cls.name = name
        _ASSEMBLY[name] = cls
        return cls

    return deco


def get_assembly_step(name: str) -> type[AssemblyStep]:
    _load_all()
    for mod in ("taxonomy.balance",):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
    if name not in _ASSEMBLY:
        raise KeyError(f"unknown assembly step {name!r}; known steps: {', '.join(sorted(_ASSEMBLY))}")
    return _ASSEMBLY[name]
