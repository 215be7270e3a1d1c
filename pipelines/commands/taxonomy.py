"""`dsvl-data taxonomy ...`: validate, show, edit (add/rename/move/merge/retire), diff, migrate tags,
serve the annotators' app, train the tagger. Thin: parse arguments and call taxonomy.* code."""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.tree import Tree

console = Console()
tx = typer.Typer(name="taxonomy", help="The use-case taxonomy: validate, edit, tag, serve the annotators' app.",
                 no_args_is_help=True)

FileOpt = Annotated[Path, typer.Option("--file", "-f", help="taxonomy YAML (default: the bundled one)")]
WhoOpt = Annotated[str, typer.Option("--who", help="name recorded in the changelog and audit log")]


def _default_file() -> Path:
    from taxonomy.schema import DEFAULT_PATH

    return DEFAULT_PATH


def _who(who: str) -> str:
    return who or os.environ.get("USER") or getpass.getuser()


def _edit(file: Path | None, op: str, who: str, **args: Any) -> None:
    from taxonomy.ops import EditError, apply_to_file

    try:
        new = apply_to_file(file or _default_file(), op, {k: v for k, v in args.items() if v is not None}, _who(who))
    except (EditError, ValueError, KeyError) as e:
        console.print(f"[red]refused:[/red] {e}")
        raise typer.Exit(1) from None
    console.print(f"version {new.version}: {new.changelog[-1].change}")


@tx.command()
def validate(file: Annotated[Path, typer.Argument(help="taxonomy YAML to check")]) -> None:
    """Check a taxonomy file (unique ids, parents, weights, aliases) and print its counts."""
    from taxonomy.schema import load

    try:
        tax = load(file)
    except (ValueError, OSError) as e:
        console.print(f"[red]invalid:[/red] {e}")
        raise typer.Exit(1) from None
    c = tax.counts()
    console.print(f"ok: {tax.name} v{tax.version}: main {c['main']}, secondary {c['secondary']}, "
                  f"leaf {c['leaf']} (labelable {c['labelable']}), aliases {len(tax.aliases)}")


@tx.command()
def show(file: FileOpt = None, catalog: Annotated[Path | None, typer.Option(
        help="build dir or catalog.duckdb: show sample counts per node")] = None) -> None:
    """Print the tree (with sample counts per node when a catalog is given)."""
    from taxonomy.catalog import Catalog
    from taxonomy.schema import load

    tax = load(file or _default_file())
    counts: dict[str, int] = {}
    if catalog:
        for tid, n in Catalog(catalog).tag_counts().items():
            rid = tax.resolve(tid)
            for anc in tax.path(rid) if rid else []:
                counts[anc] = counts.get(anc, 0) + n
    root = Tree(f"{tax.name} v{tax.version}")

    def grow(branch: Tree, parent: str | None) -> None:
        for n in tax.children(parent):
            label = f"{n.name} [dim]({n.id}"
            label += f", w={n.weight:g}" if n.kind != "main" and not tax.children(n.id) else ""
            label += ")[/dim]" + (f" [bold]{counts.get(n.id, 0)}[/bold]" if catalog else "")
            grow(branch.add(label), n.id)

    grow(root, None)
    console.print(root)


@tx.command()
def add(name: Annotated[str, typer.Argument(help="display name")],
        parent: Annotated[str | None, typer.Option(help="parent id (none: a main category)")] = None,
        id: Annotated[str | None, typer.Option("--id", help="id slug (default: from the name)")] = None,
        kind: Annotated[str | None, typer.Option(help="main | secondary | leaf")] = None,
        description: Annotated[str, typer.Option(help="what belongs here")] = "",
        weight: Annotated[float | None, typer.Option(help="target weight")] = None,
        keyword: Annotated[list[str] | None, typer.Option(help="keyword for the rule tagger (repeat)")] = None,
        example: Annotated[list[str] | None, typer.Option(help="example prompt (repeat)")] = None,
        file: FileOpt = None, who: WhoOpt = "") -> None:
    """Add a node."""
    _edit(file, "add", who, name=name, parent=parent, id=id, kind=kind, description=description,
          weight=weight, keywords=keyword, examples=example)


@tx.command()
def rename(id: Annotated[str, typer.Argument(help="node id")],
           name: Annotated[str | None, typer.Option(help="new display name")] = None,
           new_id: Annotated[str | None, typer.Option(help="new id (the old one becomes an alias)")] = None,
           file: FileOpt = None, who: WhoOpt = "") -> None:
    """Rename a node; a new id leaves an alias so old tags migrate."""
    _edit(file, "rename", who, id=id, name=name, new_id=new_id)


@tx.command()
def move(id: Annotated[str, typer.Argument(help="node id")],
         parent: Annotated[str, typer.Argument(help="new parent id")], file: FileOpt = None, who: WhoOpt = "") -> None:
    """Move a node under another parent."""
    _edit(file, "move", who, id=id, parent=parent)


@tx.command()
def merge(src: Annotated[str, typer.Argument(help="node folded away")],
          dst: Annotated[str, typer.Argument(help="node that remains")], file: FileOpt = None,
          who: WhoOpt = "") -> None:
    """Merge SRC into DST (same kind); SRC becomes an alias of DST."""
    _edit(file, "merge", who, src=src, dst=dst)


@tx.command()
def retire(id: Annotated[str, typer.Argument(help="node id")], file: FileOpt = None, who: WhoOpt = "") -> None:
    """Retire a node (its id stays reserved; its tags are dropped on migrate)."""
    _edit(file, "retire", who, id=id)


@tx.command()
def diff(a: Annotated[Path, typer.Argument(help="older taxonomy YAML")],
         b: Annotated[Path, typer.Argument(help="newer taxonomy YAML")]) -> None:
    """What changed between two taxonomy files (JSON)."""
    from taxonomy.ops import diff as diff_
    from taxonomy.schema import load

    console.print_json(json.dumps(diff_(load(a), load(b))))


@tx.command()
def migrate(catalog: Annotated[Path, typer.Argument(help="build dir or catalog.duckdb")],
            file: FileOpt = None) -> None:
    """Rewrite the catalog's tags (and annotators' labels) through the taxonomy's aliases."""
    from taxonomy.catalog import migrate_catalog
    from taxonomy.schema import load

    console.print_json(json.dumps(migrate_catalog(catalog, load(file or _default_file()))))


@tx.command()
def serve(host: Annotated[str, typer.Option(help="bind address; anything but loopback needs --token")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="port")] = 8780,
          token: Annotated[str | None, typer.Option(envvar="DSVL_TAXONOMY_TOKEN", help="API token")] = None,
          catalog: Annotated[Path | None, typer.Option(help="build dir or catalog.duckdb to label")] = None,
          annotations: Annotated[Path | None, typer.Option(
              help="labels DuckDB (default: annotations.duckdb beside the catalog)")] = None,
          file: FileOpt = None) -> None:
    """Serve the annotators' web app (edit the taxonomy, label samples)."""
    from taxonomy.app.server import check_bind, create_app

    try:
        check_bind(host, token)
    except ValueError as e:
        console.print(f"[red]refused:[/red] {e}")
        raise typer.Exit(2) from None
    import uvicorn

    app = create_app(file or _default_file(), catalog=catalog, annotations=annotations, token=token)
    console.print(f"annotators' app on http://{host}:{port}/" + (" (token required)" if token else ""))
    uvicorn.run(app, host=host, port=port, log_level="warning")


@tx.command("train-tagger")
def train_tagger(catalog: Annotated[Path, typer.Option(help="build dir or catalog.duckdb with labelled samples")],
                 out: Annotated[Path, typer.Option(help="where to write the fastText model")],
                 annotations: Annotated[Path | None, typer.Option(help="labels DuckDB")] = None,
                 holdout: Annotated[float, typer.Option(help="share held out for accuracy")] = 0.2,
                 seed: Annotated[int, typer.Option(help="split and training seed")] = 0,
                 epoch: Annotated[int, typer.Option(help="fastText epochs")] = 30,
                 file: FileOpt = None) -> None:
    """Train the fastText tagger on annotators' labels; print held-out accuracy per main category."""
    from taxonomy.schema import load
    from taxonomy.tagger import examples_from_labels, train

    tax = load(file or _default_file())
    examples = examples_from_labels(catalog, annotations)
    try:
        report = train(examples, tax, out, holdout=holdout, seed=seed, epoch=epoch)
    except ValueError as e:
        console.print(f"[red]cannot train:[/red] {e}")
        raise typer.Exit(1) from None
    Path(str(out) + ".report.json").write_text(json.dumps(report, indent=2))
    console.print_json(json.dumps(report))


def register(app: typer.Typer) -> None:
    """Add this part's commands to the main app."""
    app.add_typer(tx, name="taxonomy")
