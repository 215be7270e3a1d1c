"""The `dsvl-data` command: thin typer commands that parse arguments and call library code."""

from __future__ import annotations

import typer

from pipelines.commands import docs, model, quality, taxonomy, train, web

app = typer.Typer(
    name="dsvl-data",
    help="Build DeepSeek-VL-style pretraining and SFT corpora, and train the model on them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

for part in (model, taxonomy, quality, train, web, docs):
    part.register(app)


if __name__ == "__main__":
    app()
