#!/usr/bin/env bash
# Turns the shared datasets into one mixed, split instruction dataset (see docs/data.md):
#   scripts/prepare-data.sh                                  # ../shared/datasets -> data/
#   DATASETS=/path/to/datasets SEED=1 scripts/prepare-data.sh
# Writes data/unified/<stem>.jsonl (one per dataset file, with summary.json) and
# data/mix/{train,validation,test}.jsonl (with counts.json).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${MOEFORGE:-build/release/moeforge}
DATASETS=${DATASETS:-../shared/datasets}
SEED=${SEED:-0}
[ -x "$BIN" ] || { echo "build first: cmake --preset release && cmake --build --preset release" >&2; exit 1; }
[ -d "$DATASETS" ] || { echo "$DATASETS: no such directory (set DATASETS=...)" >&2; exit 1; }

shopt -s nullglob
inputs=("$DATASETS"/*.json "$DATASETS"/*.jsonl "$DATASETS"/*.txt)
[ ${#inputs[@]} -gt 0 ] || { echo "$DATASETS holds no .json, .jsonl or .txt files" >&2; exit 1; }
"$BIN" data convert "${inputs[@]}" -o data/unified --domains examples/data/domains.yaml

# Mix exactly what this run wrote (spider_tables.json is read by spider_dev and writes nothing;
# the {"text"} pretraining files are skipped by mix). DailyDialog yields one record per reply,
# ~82k in all, so it is capped to stay near the size of the other domains.
unified=()
for f in "${inputs[@]}"; do
  out="data/unified/$(basename "${f%.*}").jsonl"
  if [ -f "$out" ]; then unified+=("$out"); fi
done
"$BIN" data mix "${unified[@]}" -o data/mix --seed "$SEED" \
  --cap dailydialog_train=6000 --cap dailydialog_validation=1000
