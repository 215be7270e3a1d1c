"""`dsvl-data docs ...`: make the demo PDFs, inspect a PDF's pages, OCR one image (thin wrappers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

docs_app = typer.Typer(help="Documents part: demo PDFs, page inspection, OCR of one image.", no_args_is_help=True)


@docs_app.command("demo-pdfs")
def demo_pdfs(out: Annotated[Path, typer.Argument(help="folder to write the PDFs to")] = Path("out/demo-inputs/pdfs"),
              ) -> None:
    """Make the demo PDFs (layout, two columns, table, figures, rotated page, a scan) from real text."""
    from rich.console import Console

    from operators.pdf.synth import make_demo_set

    for p in make_demo_set(out):
        Console().print(f"wrote {p} ({p.stat().st_size} bytes)", highlight=False)


@docs_app.command("inspect")
def inspect_pdf(
    pdf: Annotated[Path, typer.Argument(help="the PDF to look at")],
    max_pages: Annotated[int, typer.Option(help="pages to read")] = 50,
) -> None:
    """One line per page: text-layer verdict, characters, fonts, figures, tables, rotation; rejections too."""
    from rich.console import Console
    from rich.table import Table

    from operators.pdf.extract import PdfExtractor
    from operators.sample import Sample

    if not pdf.is_file():
        raise typer.BadParameter(f"{pdf} is not a file", param_hint="PDF")
    op = PdfExtractor({"inputs": str(pdf), "max_pages": max_pages, "emit": ["doc_ocr", "interleaved"],
                       "dpi": 36})
    table = Table(title=str(pdf))
    for col in ("page", "text layer", "chars", "figures", "tables", "rotation", "fonts"):
        table.add_column(col)
    try:
        for it in op.run():
            if isinstance(it, Sample) and it.task == "doc_ocr":
                m = it.meta
                table.add_row(str(m["page"]), m["text_layer"], str(m["chars"]), str(m["figures"]), str(m["tables"]),
                              str(m["rotation"]), ", ".join(m["fonts"][:3]))
            elif not isinstance(it, Sample):
                table.add_row(it.key, f"[red]{it.reason}", it.detail[:60], "", "", "", "")
    finally:
        op.teardown()
    Console().print(table)


@docs_app.command("ocr")
def ocr_image(
    image: Annotated[Path, typer.Argument(help="a PNG or JPEG to read")],
    engine: Annotated[str, typer.Option(help="ppocr or tesseract")] = "ppocr",
) -> None:
    """Print the text of one image (lines in reading order) and its mean confidence."""
    from rich.console import Console

    from operators.base import get_operator, run_operator
    from operators.sample import Sample, content_key

    if engine not in ("ppocr", "tesseract"):
        raise typer.BadParameter("ppocr or tesseract", param_hint="--engine")
    data = image.read_bytes()
    s = Sample(content_key("img", data), str(image), "file", "doc_ocr", "document_ocr", [1, 2])
    s.add_image(data, image.suffix.lstrip(".").lower() or "png")
    op = get_operator(f"ocr.{engine}")({"crops": False})
    try:
        out = run_operator(op, [s])[0]
    finally:
        op.teardown()
    console = Console()
    if isinstance(out, Sample):
        console.print(out.text.removeprefix("<image>\n"), highlight=False)
        console.print(f"[dim]{len(out.meta['ocr']['lines'])} lines, mean confidence {out.scores['ocr_confidence']:.3f}")
    else:
        console.print(f"[red]{out.reason}: {out.detail}")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this part's commands to the main app."""
    app.add_typer(docs_app, name="docs")
