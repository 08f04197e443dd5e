#!/usr/bin/env bash
# Build the wheel, install it into a fresh virtual environment, and run `history init`, `train` and `recommend`
# from another folder: the installed package must carry its bundled history and migrations (no checkout needed).
# Exits non-zero on any failure. Use: bash scripts/wheel_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python -m pip wheel -q --no-deps -w "$work/wheel" . -c constraints.txt
python -m venv "$work/venv"
"$work/venv/bin/pip" install -q torch==2.13.0
"$work/venv/bin/pip" install -q -c constraints.txt "$work"/wheel/recommender-*.whl
mkdir "$work/elsewhere"
cd "$work/elsewhere"  # no checkout here: everything comes from the installed wheel
bin="$work/venv/bin/recommender"
db="$work/wheel.db"
"$bin" history --db "$db" init
"$bin" train --db "$db" --recommender fm --features d,m --protocol vtab1k --modality image --out "$work/model"
out="$("$bin" recommend --db "$db" --model "$work/model" --dataset dtd --top-k 3)"
echo "$out"
grep -q "dtd" <<<"$out" || { echo "wheel_check: recommend printed no row for dtd" >&2; exit 1; }
case "$("$work/venv/bin/python" -c 'import recommender; print(recommender.__file__)')" in
    "$repo"/*) echo "wheel_check: recommender was imported from the checkout, not the wheel" >&2; exit 1 ;;
esac
echo "wheel_check: ok"
