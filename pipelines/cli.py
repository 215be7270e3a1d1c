"""The `dsvl-data` command: thin typer commands that parse arguments and call library code."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines.commands import docs, model, quality, taxonomy, train, web

app = typer.Typer(
    name="dsvl-data",
    help="Build DeepSeek-VL-style pretraining and SFT corpora, and train the model on them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
_WIDTH = None if sys.stdout.isatty() else 140  # logs and CI get whole tables
console = Console(width=_WIDTH)
err = Console(stderr=True, width=_WIDTH)

SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override KEY.PATH=VALUE (repeatable)")]


def _fail(msg: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {msg}", highlight=False)
    raise typer.Exit(code)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@app.command()
def build(
    recipe: Annotated[Path, typer.Argument(help="pipelines/<recipe>.yaml")],
    output: Annotated[Path, typer.Option("--output", "-o", help="output folder (pool, shards, catalog)")],
    set_: SetOpt = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address; default: embedded local Ray")] = None,
    resume: Annotated[bool, typer.Option(help="continue a killed build in the same output folder")] = False,
) -> None:
    """Run a recipe: sources and operators on Ray Data, then assembly into shards and a catalog."""
    from pipelines.recipe import RecipeError, load_recipe
    from pipelines.runner import build_recipe

    try:
        rec = load_recipe(recipe, set_ or [])
    except RecipeError as e:
        _fail(str(e))
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task(f"build {rec.name}: inputs", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            result = build_recipe(rec, output, address=address, resume=resume, progress=progress)
        except RecipeError as e:
            _fail(str(e))
    table = Table(title=f"build {rec.name}: run {result.run}, {result.seconds:.1f} s")
    for col in ("step", "operator", "rows in", "rows out", "rejected (reason: n)", "seconds", "rows/s"):
        table.add_column(col, justify="right" if col in ("rows in", "rows out", "seconds", "rows/s") else "left")
    for s in result.steps:
        rej = ", ".join(f"{k}: {v}" for k, v in sorted(s.rejected.items())) or "-"
        table.add_row(s.path, s.op, str(s.rows_in), str(s.rows_out), rej, f"{s.seconds:.2f}", f"{s.rows_per_s:.1f}")
    console.print(table)
    mix = Table(title="mixture (target vs achieved)")
    for col in ("stage", "category", "ratio", "target", "achieved", "available"):
        mix.add_column(col)
    for r in result.mixture:
        mix.add_row(r["stage"], r["category"], f"{r['ratio']:.3f}", str(r["target"]), str(r["achieved"]),
                    str(r["available"]))
    console.print(mix)
    _print_assembly_reports(result.assembly)
    console.print(f"inputs {result.inputs} (skipped, already done: {result.skipped_inputs}); samples "
                  f"{result.samples}; rejected {result.rejected}")
    for stream, n in sorted(result.streams.items()):
        console.print(f"  shards/{stream}: {n} samples")
    console.print(f"output: {output.resolve()} (catalog: {output / 'catalog.duckdb'})")


def _print_assembly_reports(reports: dict) -> None:
    """One line of figures per assembly step; leaf targets vs achieved where a step balances."""
    for name, rep in reports.items():
        if not isinstance(rep, dict):
            continue
        scalars = ", ".join(f"{k} {v}" for k, v in rep.items() if isinstance(v, (int, float, str)))
        console.print(f"assembly {name}: {scalars}", highlight=False)
        targets, achieved = rep.get("targets"), rep.get("achieved")
        if isinstance(targets, dict) and isinstance(achieved, dict) and targets:
            t = Table(title=f"{name}: target vs achieved share per leaf")
            for col in ("leaf", "target", "achieved", "before", "after"):
                t.add_column(col, justify="left" if col == "leaf" else "right")
            before, after = rep.get("counts_before", {}), rep.get("counts_after", {})
            for leaf in sorted(set(targets) | set(achieved)):
                t.add_row(leaf, f"{targets.get(leaf, 0):.3f}", f"{achieved.get(leaf, 0):.3f}",
                          str(before.get(leaf, 0)), str(after.get(leaf, 0)))
            console.print(t)


@app.command()
def submit(
    recipe: Annotated[str, typer.Argument(help="recipe path, relative to the working directory shipped")],
    output: Annotated[str, typer.Option("--output", "-o", help="output folder as the cluster sees it")],
    address: Annotated[str, typer.Option(help="Ray dashboard address, e.g. http://head:8265")],
    set_: SetOpt = None,
    working_dir: Annotated[Path | None, typer.Option(help="ship this folder to the cluster")] = None,
    wait: Annotated[bool, typer.Option(help="wait until the job ends; exit 1 unless it succeeded")] = False,
) -> None:
    """Submit a build as a Ray job (incremental: it runs with --resume)."""
    from pipelines.jobs import submit as _submit

    job, status = _submit(address, recipe, output, set_ or [], working_dir, wait=wait)
    console.print(f"submitted {job}: {status}")
    if wait and status != "SUCCEEDED":
        raise typer.Exit(1)


@app.command("run-op")
def run_op(
    operator: Annotated[str, typer.Argument(help="operator name, e.g. pdf.extract")],
    inputs: Annotated[list[str], typer.Argument(help="input units (paths, URLs) or a JSONL of sample rows")],
    out: Annotated[Path, typer.Option("--out", help="folder for rows.jsonl, rejects.jsonl and media/")],
    set_: SetOpt = None,
) -> None:
    """Run one operator on files, without Ray; writes OUT/rows.jsonl and OUT/rejects.jsonl."""
    from pipelines.recipe import RecipeError
    from pipelines.runop import run_op as _run

    try:
        n_rows, n_rej = _run(operator, inputs, out, set_ or [])
    except (RecipeError, KeyError, ValueError) as e:
        _fail(str(e.args[0]) if isinstance(e, KeyError) else str(e))
    console.print(f"{operator}: {n_rows} rows -> {out / 'rows.jsonl'}, {n_rej} rejects -> {out / 'rejects.jsonl'}")


@app.command()
def verify(output: Annotated[Path, typer.Argument(help="build output folder")]) -> None:
    """Exit 0 only when the ledger balances and the shards match their manifests and the catalog."""
    from pipelines.verify import verify as _verify

    try:
        problems = _verify(output)
    except FileNotFoundError as e:
        _fail(str(e))
    if problems:
        for p in problems:
            err.print(f"[red]x[/] {p}", highlight=False)
        _fail(f"{len(problems)} problem(s) in {output}", code=1)
    console.print(f"[green]ok[/]: {output}: ledger balances; shards match manifests and catalog")


@app.command()
def stats(
    output: Annotated[Path, typer.Argument(help="build output folder")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Counts by source, task, stream, language, taxonomy and rejection reason."""
    from pipelines.catalog import stats as _stats

    try:
        s = _stats(output)
    except FileNotFoundError as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(s, indent=1, sort_keys=True))
        return
    console.print(f"samples {s['samples']} (kept {s['kept']}), inputs {s['inputs']}")
    for group in ("by_source", "by_task", "by_category", "by_stream", "by_lang", "by_taxonomy", "rejections",
                  "shards"):
        t = Table(title=group.replace("_", " "))
        t.add_column("name")
        t.add_column("count", justify="right")
        for k, v in s[group].items():
            t.add_row(k, str(v))
        console.print(t)


@app.command()
def inspect(
    path: Annotated[Path, typer.Argument(help="a shard (.tar), a pool .parquet file or a build folder")],
    n: Annotated[int, typer.Option("-n", help="how many samples")] = 5,
    out: Annotated[Path | None, typer.Option("--out", help="save the samples' images here")] = None,
) -> None:
    """Show samples from a shard or the pool, saving their images."""
    from pipelines.inspect import describe, iter_any

    if not path.exists():
        _fail(f"{path} does not exist")
    shown = 0
    try:
        for key, d, media in iter_any(path):
            if shown >= n:
                break
            console.print_json(json.dumps(describe(d, media), ensure_ascii=False))
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                for name, data in media.items():
                    (out / f"{key}.{name}").write_bytes(data)
            shown += 1
    except ValueError as e:
        _fail(str(e))
    console.print(f"{shown} sample(s) from {path}" + (f"; images in {out}" if out else ""))


for part in (model, taxonomy, quality, train, web, docs):
    part.register(app)


if __name__ == "__main__":
    app()
