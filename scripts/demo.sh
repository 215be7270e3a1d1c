#!/usr/bin/env bash
# `make demo`: make the demo inputs (all offline: Python's own documentation, generated charts,
# generated PDFs, a local demo web site), build pipelines/demo.yaml on embedded Ray, verify it,
# write the HTML report and train the tiny model on the shards for a few steps.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_USAGE_STATS_ENABLED=0
BIN=.venv/bin
OUT=${DEMO_OUT:-out/demo}
IN=out/demo-inputs

rm -rf "$OUT"
mkdir -p "$IN"
$BIN/python scripts/make_demo_text.py "$IN/text" --modules 120

$BIN/dsvl-data build pipelines/demo.yaml --output "$OUT" --set text="$IN/text"
$BIN/dsvl-data verify "$OUT"
$BIN/dsvl-data stats "$OUT"
echo
echo "demo shards:  $(cd "$OUT/shards" && pwd)"
echo "catalog:      $(cd "$OUT" && pwd)/catalog.duckdb"
