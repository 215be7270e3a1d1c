"""Write the demo's text corpus from text that ships with Python: module and function documentation.

Real English prose, available offline on every machine: the language stream (text.jsonl) and a small
text-only SFT set (questions about a function, answered with its documented purpose).
Usage: python scripts/make_demo_text.py OUT_DIR [--modules N]
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import sys
import warnings
from pathlib import Path

SKIP = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "lib2to3", "ensurepip",
        "venv", "pydoc_data", "__main__", "__phello__", "_pydev_bundle", "sre_compile", "sre_constants",
        "sre_parse"}


def _docs(limit: int) -> tuple[list[dict], list[dict]]:
    texts, sft = [], []
    names = sorted(m.name for m in pkgutil.iter_modules() if m.module_finder.path.startswith(sys.base_prefix)
                   and not m.name.startswith("_") and m.name not in SKIP)
    for name in names[:limit]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mod = importlib.import_module(name)
        except Exception:
            continue
        doc = inspect.getdoc(mod)
        if doc and len(doc) > 200:
            texts.append({"text": doc, "lang": "en", "license": "PSF-2.0", "id": f"py-doc:{name}"})
        for attr, obj in sorted(vars(mod).items()):
            if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if getattr(obj, "__module__", None) != name:
                continue
            d = inspect.getdoc(obj)
            if not d or len(d) < 80:
                continue
            texts.append({"text": f"{name}.{attr}\n\n{d}", "lang": "en", "license": "PSF-2.0"})
            first = d.split("\n\n")[0].replace("\n", " ").strip()
            if len(first) > 40 and len(sft) < 400:
                kind = "class" if inspect.isclass(obj) else "function"
                sft.append({"messages": [
                    {"role": "user", "content": f"What does the {kind} `{attr}` in Python's `{name}` module do?"},
                    {"role": "assistant", "content": first}], "license": "PSF-2.0"})
    return texts, sft


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    limit = int(argv[argv.index("--modules") + 1]) if "--modules" in argv else 120
    out.mkdir(parents=True, exist_ok=True)
    texts, sft = _docs(limit)
    with open(out / "python-docs.jsonl", "w") as f:
        for t in texts:
            f.write(json.dumps(t, ensure_ascii=False) + "\n")
    with open(out / "python-qa.jsonl", "w") as f:
        for s in sft:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    print(f"demo text: {len(texts)} documents, {len(sft)} text-only SFT records in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
