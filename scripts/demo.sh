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
kill $SERVER 2>/dev/null || true
$BIN/dsvl-data verify "$OUT"
$BIN/dsvl-data stats "$OUT"
$BIN/dsvl-data report "$OUT"

# the bundled trainer: the tiny hybrid model through the three stages on the demo shards
# (1: adaptor warm-up; 2: joint pretraining, language share 1.0 -> 0.7; 3: SFT)
T="$OUT/train"
$BIN/dsvl-data train tiny-stage1 --data "$OUT" --steps 15 --out "$T/s1" --threads 1
$BIN/dsvl-data train tiny-stage2 --data "$OUT" --steps ${DEMO_STEPS:-30} --out "$T/s2" --init-from "$T/s1" --threads 1
$BIN/dsvl-data train tiny-stage3 --data "$OUT" --steps 20 --out "$T/s3" --init-from "$T/s2" --threads 1
$BIN/python - "$T" <<'PY'
import json, sys
for stage in ("s1", "s2", "s3"):
    rows = [json.loads(line) for line in open(f"{sys.argv[1]}/{stage}/metrics.jsonl")]
    tr = [r for r in rows if "train/loss" in r]
    print(f"tiny model, stage {stage[1]}: train loss {tr[0]['train/loss']:.3f} (step {tr[0]['step']}) -> "
          f"{tr[-1]['train/loss']:.3f} (step {tr[-1]['step']})")
PY
echo
echo "demo shards:  $(cd "$OUT/shards" && pwd)"
echo "catalog:      $(cd "$OUT" && pwd)/catalog.duckdb"
echo "report:       $(cd "$OUT" && pwd)/report.html"
echo "checkpoints:  $(cd "$OUT/train" && pwd)/s{1,2,3}/checkpoints"
