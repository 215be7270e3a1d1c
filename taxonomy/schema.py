"""The taxonomy schema (pydantic) and its validation; loading and atomic, version-checked saving.

The YAML file is the source of truth: a flat list of nodes (main / secondary / leaf) with parents,
aliases left by renames and merges, a version and a changelog. Ids are slugs and are never reused.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# libyaml's C loader/dumper when present: the pure-Python ones take ~0.5 s on this 1,100-line file
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
DEFAULT_PATH = Path(__file__).with_name("deepseek_vl.yaml")
SLUG = r"^[a-z0-9]+(-[a-z0-9]+)*$"
Kind = Literal["main", "secondary", "leaf"]
Short = Annotated[str, Field(min_length=1, max_length=500)]
# Which kinds may sit under which: Evaluation and Safety hold leaves directly (no secondary level).
ALLOWED_PARENT: dict[str, tuple[str, ...]] = {"main": (), "secondary": ("main",), "leaf": ("main", "secondary")}


class VersionConflict(Exception):
    """The file changed since the editor loaded it (another editor saved first)."""

    def __init__(self, expected: int, current: int):
        super().__init__(f"taxonomy is at version {current}, edit was made against version {expected}")
        self.expected = expected
        self.current = current


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=SLUG)
    name: str = Field(min_length=1, max_length=200)
    kind: Kind
    parent: str | None = None
    description: str = Field("", max_length=5000)
    examples: list[Short] = Field(default_factory=list, max_length=100)
    keywords: list[Short] = Field(default_factory=list, max_length=200)
    tasks: list[Short] = Field(default_factory=list, max_length=100, description="source tasks that imply this category")
    weight: float = Field(0.0, ge=0.0, description="target weight for balancing (labelable nodes)")
    retired: bool = False


class ChangelogEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int
    change: str
    by: str = ""


class Taxonomy(BaseModel):
    """A validated taxonomy. Construct through `Taxonomy.model_validate(dict)` or `load(path)`."""

    model_config = ConfigDict(extra="forbid")
    name: str
    version: int = Field(ge=1)
    description: str = ""
    changelog: list[ChangelogEntry] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict)
    nodes: list[Node]

    @model_validator(mode="after")
    def _check(self) -> Taxonomy:
        errors: list[str] = []
        dup = [i for i, c in Counter(n.id for n in self.nodes).items() if c > 1]
        if dup:
            errors.append(f"duplicate node ids: {', '.join(sorted(dup))}")
        by_id = {n.id: n for n in self.nodes}
        for n in self.nodes:
            if n.parent is None:
                if n.kind != "main":
                    errors.append(f"{n.id}: a {n.kind} node needs a parent")
                continue
            p = by_id.get(n.parent)
            if p is None:
                errors.append(f"{n.id}: parent {n.parent!r} does not exist")
            elif p.kind not in ALLOWED_PARENT[n.kind]:
                errors.append(f"{n.id}: a {n.kind} cannot sit under the {p.kind} {p.id!r}")
            elif p.retired and not n.retired:
                errors.append(f"{n.id}: parent {p.id!r} is retired")
        for old, new in self.aliases.items():
            if not re.match(SLUG, old):
                errors.append(f"alias {old!r} is not a slug")
            if old in by_id:
                errors.append(f"alias {old!r} is also a node id (ids are never reused)")
            target = by_id.get(new)
            if target is None or target.retired:
                errors.append(f"alias {old!r} -> {new!r} does not point to a live node")
        versions = [c.version for c in self.changelog]
        if versions != sorted(versions) or (versions and versions[-1] > self.version):
            errors.append("changelog versions must be increasing and not above the taxonomy version")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    # --- views -------------------------------------------------------------------------------
    def node(self, id: str) -> Node:
        for n in self.nodes:
            if n.id == id:
                return n
        raise KeyError(f"no node {id!r}")

    def live(self) -> list[Node]:
        return [n for n in self.nodes if not n.retired]

    def children(self, id: str | None) -> list[Node]:
        return [n for n in self.nodes if n.parent == id and not n.retired]

    def labelable(self) -> list[Node]:
        """Nodes a sample can be tagged with: live leaves, and live secondaries without live children
        (Humor Reasoning). Tags always name one of these."""
        has_child = {n.parent for n in self.live() if n.parent}
        return [n for n in self.live() if n.kind != "main" and n.id not in has_child]

    def reserved_ids(self) -> set[str]:
        """Every id ever used: live and retired nodes, and alias names. None may be reused."""
        return {n.id for n in self.nodes} | set(self.aliases)

    def resolve(self, id: str) -> str | None:
        """The live id a tag means now (through aliases); None if retired without replacement or unknown."""
        id = self.aliases.get(id, id)
        try:
            n = self.node(id)
        except KeyError:
            return None
        return None if n.retired else n.id

    def main_of(self, id: str) -> str:
        n = self.node(id)
        while n.parent is not None:
            n = self.node(n.parent)
        return n.id

    def path(self, id: str) -> list[str]:
        n = self.node(id)
        out = [n.id]
        while n.parent is not None:
            n = self.node(n.parent)
            out.append(n.id)
        return out[::-1]

    def counts(self) -> dict[str, int]:
        c = Counter(n.kind for n in self.live())
        return {"main": c["main"], "secondary": c["secondary"], "leaf": c["leaf"],
                "labelable": len(self.labelable())}

    def target_weights(self) -> dict[str, float]:
        """Normalised target shares over labelable nodes (the balancer's targets)."""
        w = {n.id: n.weight for n in self.labelable()}
        total = sum(w.values())
        return {k: (v / total if total else 0.0) for k, v in w.items()}


# --- file io -------------------------------------------------------------------------------------

def _header(text: str) -> str:
    """The leading comment block of a YAML file, kept across saves."""
    lines = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line)
    return "".join(lines)


def load(path: str | Path = DEFAULT_PATH) -> Taxonomy:
    """Read and validate a taxonomy file; raises ValueError naming every problem."""
    text = Path(path).read_text(encoding="utf-8")
    data = yaml.load(text, Loader=_Loader)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a YAML mapping")  # noqa: TRY004 - callers report ValueErrors
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as e:
        raise ValueError(f"{path}: {validation_message(e)}") from None


def validation_message(err: ValidationError) -> str:
    """One readable line per problem, without pydantic's echo of the whole input."""
    out = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        out.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(out)


def dump(tax: Taxonomy) -> str:
    data = tax.model_dump(mode="json", exclude_defaults=False)
    for n in data["nodes"]:  # keep the file short: drop empty/default fields
        for k in ("examples", "keywords", "tasks"):
            if not n[k]:
                del n[k]
        if n["parent"] is None:
            del n["parent"]
        if not n["retired"]:
            del n["retired"]
        if n["kind"] == "main" and n["weight"] == 0.0:
            del n["weight"]
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


@contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """An exclusive advisory lock beside the file, so that read-check-write is one step across
    processes (two app workers, or the CLI while the app runs)."""
    lock = Path(str(path) + ".lock")
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def atomic_write(path: str | Path, text: str) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(tax: Taxonomy, path: str | Path, expected_version: int | None = None) -> None:
    """Validate and write `tax` atomically. With `expected_version`, refuse (VersionConflict) when the
    file on disk is no longer at that version. Caller holds `locked(path)` for a read-modify-write."""
    path = Path(path)
    tax = Taxonomy.model_validate(tax.model_dump())  # re-validate whatever the caller did
    header = ""
    if path.exists():
        text = path.read_text(encoding="utf-8")
        header = _header(text)
        if expected_version is not None:
            current = int((yaml.load(text, Loader=_Loader) or {}).get("version", 0))
            if current != expected_version:
                raise VersionConflict(expected_version, current)
    atomic_write(path, header + dump(tax))
