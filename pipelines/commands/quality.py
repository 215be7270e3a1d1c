"""`dsvl-data quality train` (a fastText quality classifier) and `dsvl-data report DIR` (the HTML build
report). Thin: parse arguments and call operators.quality / pipelines.report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
quality_app = typer.Typer(name="quality", help="Text quality classifiers (fastText).", no_args_is_help=True)


def _texts(files: list[Path], catalog: Path | None, where: str | None, limit: int | None) -> list[str]:
    from operators.quality.classifier import catalog_texts, load_texts

    texts = [t for f in files for t in load_texts(f)]
    if where:
        if catalog is None:
            raise typer.BadParameter("a --*-where query needs --catalog")
        path = catalog / "catalog.duckdb" if catalog.is_dir() else catalog
        texts += catalog_texts(path, where, limit)
    return texts


@quality_app.command()
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="model file to write (fastText .bin)")],
    positive: Annotated[list[Path], typer.Option(
        "--positive", "-p", help="good texts: .jsonl (text/messages) or one text per line; repeatable")] = [],  # noqa: B006
    negative: Annotated[list[Path], typer.Option(
        "--negative", "-n", help="bad texts, same formats; repeatable")] = [],  # noqa: B006
    catalog: Annotated[Path | None, typer.Option(
        help="build folder or catalog.duckdb for the --*-where queries")] = None,
    positive_where: Annotated[str | None, typer.Option(
        help="SQL condition on the catalog's samples table, e.g. \"source = 'pdf.extract'\"")] = None,
    negative_where: Annotated[str | None, typer.Option(help="SQL condition selecting bad samples")] = None,
    limit: Annotated[int | None, typer.Option(help="at most this many samples per catalog query")] = None,
    epoch: Annotated[int, typer.Option(help="training epochs")] = 10,
    word_ngrams: Annotated[int, typer.Option(help="word n-gram length")] = 2,
    seed: Annotated[int, typer.Option(help="shuffle and training seed")] = 0,
) -> None:
    """Train a good/bad fastText classifier for `quality.fasttext` from files or catalog queries."""
    import duckdb

    from operators.quality.classifier import train_quality_classifier

    try:
        pos = _texts(positive, catalog, positive_where, limit)
        neg = _texts(negative, catalog, negative_where, limit)
        res = train_quality_classifier(pos, neg, out, epoch=epoch, word_ngrams=word_ngrams, seed=seed)
    except (OSError, ValueError) as e:
        console.print(f"[red]quality train failed:[/red] {e}")
        raise typer.Exit(1) from None
    except duckdb.Error as e:  # a bad --*-where condition or a catalog without samples
        console.print(f"[red]catalog query failed:[/red] {e}")
        raise typer.Exit(1) from None
    console.print(f"wrote {res.path} (sha256 {res.sha256[:16]}): {res.n_positive} positive, "
                  f"{res.n_negative} negative, held-out accuracy {res.accuracy:.3f} on {res.n_test}")


def report(
    directory: Annotated[Path, typer.Argument(help="build output folder (holds catalog.duckdb and pool/)")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="HTML file (default: DIR/report.html)")] = None,
) -> None:
    """Write one self-contained HTML report of a build: counts, rejections, scores, a gallery."""
    from pipelines.report import write_report

    try:
        path = write_report(directory, out)
    except FileNotFoundError as e:
        console.print(f"[red]no report:[/red] {e}")
        raise typer.Exit(1) from None
    console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add this part's commands to the main app."""
    app.add_typer(quality_app)
    app.command("report")(report)
