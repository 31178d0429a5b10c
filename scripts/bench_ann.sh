#!/usr/bin/env bash
# The ANN index against hnswlib on the same generated data (BENCHMARKS.md,
# "ANN index"). Each half takes minutes of CPU; run it on a quiet machine.
# Usage: scripts/bench_ann.sh [DIR]   (data and neighbours go to DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/weft-ann}
go build -o bin/weft ./cmd/weft
echo "hnswlib (also writes $dir/base.fvecs and $dir/queries.fvecs):"
nice /usr/bin/python3 scripts/bench_hnswlib.py --dir "$dir"
echo "weft:"
nice bin/weft bench ann --base "$dir/base.fvecs" --queries "$dir/queries.fvecs" \
	--k 10 --recall 0.95 --threads 1 --out "$dir/weft.ivecs"
