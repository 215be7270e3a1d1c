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
$BIN/python scripts/make_demo_pdfs.py "$IN/pdfs"
$BIN/python scripts/make_demo_instruct.py "$IN/instruct" --n 60

# the demo web site, on loopback only, for the crawler and the renderer
PORT=${DEMO_PORT:-8765}
$BIN/dsvl-data web serve-demo --port "$PORT" --seconds 900 >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  $BIN/python -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
    "http://127.0.0.1:$PORT/index.html" 2>/dev/null && break
  sleep 0.2
done

$BIN/dsvl-data build pipelines/demo.yaml --output "$OUT" --set inputs="$IN" \
  --set seeds="http://127.0.0.1:$PORT/index.html"
$BIN/dsvl-data verify "$OUT"
$BIN/dsvl-data stats "$OUT"
echo
echo "demo shards:  $(cd "$OUT/shards" && pwd)"
echo "catalog:      $(cd "$OUT" && pwd)/catalog.duckdb"
