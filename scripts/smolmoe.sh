#!/usr/bin/env bash
# The whole SmolMoE flow (docs/smolmoe.md): SmolLM2-135M-Instruct -> eight domain experts ->
# one fused 8x135M MoE -> router training -> evaluation on the validation and (held-out) test
# splits, docs/results/smolmoe-quality.json (scripts/smolmoe_report.py), routing report, a chat turn.
#   scripts/smolmoe.sh                # PROFILE=small: about 100 minutes on a 2-core CPU
#   PROFILE=full scripts/smolmoe.sh   # 600-step experts, one epoch of router training (GPU-sized)
# Every stage skips work whose output exists, so an interrupted run continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${MOEFORGE:-build/release/moeforge}
PROFILE=${PROFILE:-small}
VALID=data/mix/validation.jsonl
OUT=runs/smolmoe
[ -x "$BIN" ] || { echo "build first: cmake --preset release && cmake --build --preset release" >&2; exit 1; }
case "$PROFILE" in
  small) EXPERT_MINUTES=8; ROUTER_STEPS=320; ROUTER_MINUTES=20; PER_DOMAIN=48 ;;
  full)  EXPERT_MINUTES=0; ROUTER_STEPS=3500; ROUTER_MINUTES=0; PER_DOMAIN=0 ;;
  *) echo "PROFILE must be small or full" >&2; exit 2 ;;
esac
start=$SECONDS
stage() { echo "== [$(( (SECONDS - start) / 60 )) min] $*" >&2; }

stage "1. the base model and the data"
scripts/fetch-smollm2.sh > /dev/null
[ -f "$VALID" ] || scripts/prepare-data.sh

stage "2. eight domain experts ($PROFILE)"
if [ "$PROFILE" = full ]; then
  for d in actor analyst coder encyclopedia guardian summarizer thinker writer; do
    [ -f runs/experts/$d/model/config.json ] || "$BIN" train examples/experts/$d.yaml --set train.steps=600 \
      --set train.max_minutes=0 > runs/experts/$d.summary.json
  done
fi
missing=()
for d in actor analyst coder encyclopedia guardian summarizer thinker writer; do
  [ -f runs/experts/$d/model/config.json ] || missing+=("$d")
done
if [ ${#missing[@]} -gt 0 ]; then MINUTES=$EXPERT_MINUTES EVAL_PER_DOMAIN=${PER_DOMAIN/#0/100000} scripts/train-experts.sh "${missing[@]}"; fi
# Every expert on every domain (older runs scored each on its own only): the best single expert
# per domain and on the whole mix are what the MoE is compared with.
for d in actor analyst coder encyclopedia guardian summarizer thinker writer; do
  grep -q '"Writer"' runs/experts/$d.eval.json 2>/dev/null && grep -q '"Actor"' runs/experts/$d.eval.json ||
    "$BIN" eval -m runs/experts/$d/model --data "$VALID" --max-per-domain "$PER_DOMAIN" --json runs/experts/$d.eval.json --quiet
done

stage "3. fuse (routers from prompts)"
[ -f $OUT/fused/config.json ] || "$BIN" fuse examples/smolmoe/fuse.yaml

stage "4. train the routers ($ROUTER_STEPS steps)"
[ -f $OUT/routers/model/config.json ] || "$BIN" train examples/smolmoe/train-routers.yaml \
  --set train.steps=$ROUTER_STEPS --set train.max_minutes=$ROUTER_MINUTES > $OUT/routers.summary.json

stage "5. evaluate: fused (prompt routers) and trained routers, per domain"
for pair in fused:fused routers:routers/model; do
  name=${pair%%:*} model=${pair#*:}
  [ -f "$OUT/$name.eval.json" ] || "$BIN" eval -m "$OUT/$model" --data "$VALID" --max-per-domain "$PER_DOMAIN" \
    --json "$OUT/$name.eval.json"
done

[ -f "$OUT/routers.dispatch.json" ] || "$BIN" inspect -m $OUT/routers/model --data "$VALID" \
  --max-per-domain "$PER_DOMAIN" --json --quiet > "$OUT/routers.dispatch.json"

stage "6. held out: the test split (never used for tuning): base, MoE and every expert on every domain"
mkdir -p $OUT/test
for pair in base:$HOME/.cache/moeforge/SmolLM2-135M-Instruct.Q4_1.gguf routers:$OUT/routers/model; do
  name=${pair%%:*} model=${pair#*:}
  [ -f "$OUT/test/$name.eval.json" ] || "$BIN" eval -m "$model" --data data/mix/test.jsonl --max-per-domain "$PER_DOMAIN" \
    --json "$OUT/test/$name.eval.json" --quiet
done
for d in actor analyst coder encyclopedia guardian summarizer thinker writer; do
  grep -q '"Writer"' $OUT/test/$d.eval.json 2>/dev/null && grep -q '"Actor"' $OUT/test/$d.eval.json ||
    "$BIN" eval -m runs/experts/$d/model --data data/mix/test.jsonl --max-per-domain "$PER_DOMAIN" \
      --json "$OUT/test/$d.eval.json" --quiet
done
/usr/bin/python3 scripts/smolmoe_report.py runs docs/results/smolmoe-quality.json

stage "7. read its mind"
"$BIN" inspect -m $OUT/routers/model -p "Write a Python function that checks whether a number is prime." --chat
"$BIN" inspect -m $OUT/routers/model --data "$VALID" --max-per-domain 16 -o $OUT/routes.html

stage "8. chat"
echo "What is the capital of France?" | "$BIN" chat -m $OUT/routers/model --show-experts --temperature 0
stage "done: tables in $OUT/*.eval.json, heatmaps in $OUT/routes.html"
