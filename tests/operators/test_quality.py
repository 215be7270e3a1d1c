"""quality.langid on English/German/French/Chinese text with the bundled lid.176 model, and a fastText
quality classifier trained on a synthetic good/bad set (library and `dsvl-data quality train`).
"""

from __future__ import annotations

import json
import random
import shutil

import duckdb
import pytest
from typer.testing import CliRunner

from operators.base import run_operator
from operators.quality import LanguageIdentifier, QualityScorer, train_quality_classifier
from operators.quality.langid import default_lid_path
from operators.quality.text import file_sha256
from operators.sample import Rejection, Sample
from pipelines.cli import app

TEXTS = {
    "en": "The library opens at nine in the morning and closes early on Sundays during the summer.",
    "de": "Die Bibliothek öffnet um neun Uhr morgens und schließt im Sommer sonntags früher.",
    "fr": "La bibliothèque ouvre à neuf heures du matin et ferme plus tôt le dimanche en été.",
    "zh": "图书馆早上九点开门，夏季的星期日会提前关门。读者可以在网上预约座位。",
}


def text_sample(key: str, text: str | None = None, **kw) -> Sample:
    return Sample(key=key, input=f"in:{key}", source="test", task="text", category="text_only", stage=[2],
                  text=text, **kw)


@pytest.fixture(scope="module")
def langid():
    op = LanguageIdentifier({})
    op.ensure_setup()
    return op


def test_langid_labels_four_languages(langid):
    out = run_operator(langid, [text_sample(lang, t) for lang, t in TEXTS.items()])
    assert [s.lang for s in out] == ["en", "de", "fr", "zh"]
    assert all(s.scores["lang_score"] > 0.8 for s in out), [s.scores for s in out]
    sha = file_sha256(default_lid_path())
    assert all(s.provenance["models"]["quality.langid"] == sha for s in out)
    assert all(s.provenance["operators"]["quality.langid"] == "1" for s in out)


def test_langid_filters_by_language_and_score():
    op = LanguageIdentifier({"languages": ["en", "de"], "min_score": 0.5})
    noise = text_sample("x", "zzkq xvvw 9931 ppl")  # no language: lid.176 says en at about 0.2
    out = run_operator(op, [text_sample(lang, t) for lang, t in TEXTS.items()] + [noise])
    kinds = [(type(o).__name__, getattr(o, "reason", ""), o.key) for o in out]
    assert kinds[:4] == [("Sample", "", "en"), ("Sample", "", "de"), ("Rejection", "language_not_allowed", "fr"),
                         ("Rejection", "language_not_allowed", "zh")]
    assert out[2].detail.startswith("lang=fr score=0.")
    assert isinstance(out[4], Rejection) and out[4].reason == "low_language_score"
    assert out[4].detail.startswith("lang=en score=0.2") and out[4].detail.endswith("< 0.5")


def test_langid_reads_messages_and_ocr_text_and_skips_image_only(langid, tmp_path):
    sft = text_sample("m", messages=[{"role": "user", "content": "<image>\nQu'est-ce que c'est ?"},
                                     {"role": "assistant", "content": "C'est une photo d'un chat noir sur un toit."}])
    page = text_sample("p", meta={"ocr_text": TEXTS["de"]})
    image_only = text_sample("i")
    image_only.add_image(b"\x89PNG", "png")
    out = run_operator(langid, [sft, page, image_only])
    assert [s.lang for s in out] == ["fr", "de", None]
    assert "lang_score" not in out[2].scores
    # hostile text: NUL, a lone surrogate (valid JSON, not encodable), 5 MB on one line
    odd = [text_sample("n", "Hello\x00 world, this is\r\n a test"), text_sample("s", "\ud800 " + TEXTS["de"]),
           text_sample("h", TEXTS["fr"] * 50_000)]
    assert [s.lang for s in run_operator(langid, odd)] == ["en", "de", "fr"]
    # the model path can be set in the recipe; a missing model stops the operator (not a per-sample reject)
    copy = tmp_path / "lid.ftz"
    shutil.copy(default_lid_path(), copy)
    assert run_operator(LanguageIdentifier({"model_path": str(copy)}), [text_sample("e", TEXTS["en"])])[0].lang == "en"
    with pytest.raises(FileNotFoundError, match="no language-id model"):
        run_operator(LanguageIdentifier({"model_path": str(tmp_path / "none.ftz")}), [text_sample("e", "x")])


# --- quality classifier -----------------------------------------------------------------------

SUBJECTS = ["the committee", "our research team", "the city council", "a local teacher", "the museum",
            "the engineers", "the author", "a small bakery", "the hospital", "the orchestra"]
VERBS = ["published", "reviewed", "described", "presented", "discussed", "explained", "organised", "measured"]
OBJECTS = ["a detailed report on water quality", "the results of a two-year study", "a new exhibition of maps",
           "the history of the old harbour", "a plan for safer bicycle lanes", "the budget for next year",
           "a careful analysis of the survey", "the design of the new bridge"]
SPAM = ["click here", "free", "winner", "buy now", "cheap pills", "casino bonus", "$$$", "100% free", "act now",
        "limited offer", "subscribe", "xxx", "!!!", "login", "best price", "visit our site"]


def good_text(r: random.Random) -> str:
    return " ".join(f"{r.choice(SUBJECTS).capitalize()} {r.choice(VERBS)} {r.choice(OBJECTS)}."
                    for _ in range(r.randint(2, 4)))


def bad_text(r: random.Random) -> str:
    return " ".join(r.choice(SPAM) for _ in range(r.randint(6, 14)))


def test_quality_classifier_separates_good_from_bad(tmp_path):
    r = random.Random(0)
    good, bad = [good_text(r) for _ in range(300)], [bad_text(r) for _ in range(300)]
    res = train_quality_classifier(good, bad, tmp_path / "q.bin", bucket=20_000, dim=16)
    assert res.n_test == 60 and res.accuracy >= 0.95
    again = train_quality_classifier(good, bad, tmp_path / "q2.bin", bucket=20_000, dim=16)
    assert again.sha256 == res.sha256  # one thread and a seed: the same model file every time
    r = random.Random(1)  # fresh texts, never seen in training
    fresh = [text_sample(f"g{i}", good_text(r)) for i in range(50)] + \
            [text_sample(f"b{i}", bad_text(r)) for i in range(50)]
    out = run_operator(QualityScorer({"model_path": res.path, "min_score": 0.5}), fresh)
    kept = {o.key for o in out if isinstance(o, Sample)}
    assert len([k for k in kept if k.startswith("g")]) >= 48 and len([k for k in kept if k.startswith("b")]) <= 2
    rejected = [o for o in out if isinstance(o, Rejection)]
    assert all(o.reason == "low_quality" and o.detail.startswith("quality=0.") for o in rejected)
    scored = [o for o in out if isinstance(o, Sample)]
    assert scored[0].provenance["models"]["quality.fasttext"] == res.sha256 == file_sha256(tmp_path / "q.bin")
    assert sum(s.scores["quality"] for s in scored) / len(scored) > 0.9


def test_quality_train_cli_from_files_and_catalog(tmp_path):
    r = random.Random(2)
    (tmp_path / "good.jsonl").write_text("".join(json.dumps({"text": good_text(r)}) + "\n" for _ in range(100)))
    (tmp_path / "bad.txt").write_text("".join(bad_text(r) + "\n" for _ in range(60)))
    con = duckdb.connect(str(tmp_path / "catalog.duckdb"))
    rows = [(f"s{i}", "spam-site", json.dumps({"text": bad_text(r)})) for i in range(40)]
    con.execute("CREATE TABLE samples (key VARCHAR, source VARCHAR, json VARCHAR)")
    con.executemany("INSERT INTO samples VALUES (?, ?, ?)", rows)
    con.close()
    out = tmp_path / "model" / "quality.bin"
    res = CliRunner().invoke(app, ["quality", "train", "--out", str(out), "-p", str(tmp_path / "good.jsonl"),
                                   "-n", str(tmp_path / "bad.txt"), "--catalog", str(tmp_path),
                                   "--negative-where", "source = 'spam-site'", "--epoch", "5"])
    assert res.exit_code == 0, res.output
    assert "100 positive, 100 negative" in res.output and out.stat().st_size > 1000
    scorer = QualityScorer({"model_path": str(out)})
    scorer.ensure_setup()
    assert scorer.score(good_text(r)) > 0.8
    assert scorer.score(bad_text(r)) < 0.2
    bad = CliRunner().invoke(app, ["quality", "train", "--out", str(out), "--catalog", str(tmp_path),
                                   "--positive-where", "no_such_column = 1", "--negative-where", "true"])
    assert bad.exit_code == 1 and "catalog query failed" in bad.output
    empty = CliRunner().invoke(app, ["quality", "train", "--out", str(out), "-p", str(tmp_path / "bad.txt")])
    assert empty.exit_code == 1 and "need positive and negative texts" in empty.output
