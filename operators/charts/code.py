"""Plotting code generation and rendering: a self-contained matplotlib script per chart.

The operator renders a chart by executing the very script it emits (minus the file name in savefig),
inside a clean rc context, so `python chart.py` redraws the same PNG bytes with the same matplotlib.
"""

from __future__ import annotations

import io
import json
import warnings
from typing import Any

from operators.base import Reject
from operators.charts.style import ChartStyle

OUTPUT_NAME = "chart.png"


def literal(x: object) -> str:
    """A Python literal in one consistent style (double-quoted strings, non-ASCII kept readable)."""
    if isinstance(x, str):
        return json.dumps(x, ensure_ascii=False)  # a JSON string is also a valid Python string literal
    if isinstance(x, bool) or x is None:
        return repr(x)
    if isinstance(x, (int, float)):
        return repr(x)
    if isinstance(x, tuple):
        return "(" + ", ".join(literal(v) for v in x) + ("," if len(x) == 1 else "") + ")"
    if isinstance(x, list):
        return "[" + ", ".join(literal(v) for v in x) + "]"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in x.items()) + "}"
    raise TypeError(f"no literal for {type(x).__name__}")


def script(body: list[str], style: ChartStyle) -> str:
    """The full script: imports, style, rcParams, the kind's body, layout and savefig."""
    rc = ",\n".join(f"    {literal(k)}: {literal(v)}" for k, v in style.rc().items())
    head = [
        "import matplotlib",
        "",
        'matplotlib.use("Agg")',
        "import matplotlib.pyplot as plt  # noqa: E402",
        "",
        f"plt.style.use({literal(style.sheet)})",
        "plt.rcParams.update({\n" + rc + ",\n})",
        "",
    ]
    tail = ["fig.tight_layout()", save_line(style)]
    return "\n".join(head + body + tail) + "\n"


def save_line(style: ChartStyle) -> str:
    return f'fig.savefig({literal(OUTPUT_NAME)}, dpi={style.dpi}, metadata={{"Software": None}})'


def render(code: str, style: ChartStyle) -> bytes:
    """Run the script in-process and return the PNG bytes it would write (figure closed after)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    body, last = code.rstrip("\n").rsplit("\n", 1)
    if last != save_line(style):  # pragma: no cover - the script is ours; a mismatch is a bug
        raise RuntimeError("generated script does not end with its savefig line")
    ns: dict[str, object] = {"__name__": "__chart__"}
    before = set(plt.get_fignums())
    # A fresh default rc state per chart: style sheets must not leak from one chart into the next.
    with matplotlib.rc_context(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        matplotlib.rcdefaults()
        try:
            exec(compile(body, "<chart>", "exec"), ns)  # noqa: S102 - our own generated code
            fig: Any = ns["fig"]
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=style.dpi, metadata={"Software": None})
        finally:
            for num in set(plt.get_fignums()) - before:  # close only what this chart opened
                plt.close(num)
    # A label the font cannot draw comes out as boxes: the image would no longer match its table.
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    if missing:
        raise Reject("missing_glyph", missing[0][:300])
    return buf.getvalue()
