#!/usr/bin/env bash
# Trains the eight domain experts (examples/experts/*.yaml) from SmolLM2-135M-Instruct and
# compares each with the base model on its own domain's validation records.
#   scripts/train-experts.sh                 # all eight, each recipe's own budget
#   MINUTES=3 EVAL_PER_DOMAIN=32 scripts/train-experts.sh coder thinker
# Needs data/mix/{train,validation}.jsonl (scripts/prepare-data.sh) and the SmolLM2 GGUF
# (scripts/fetch-smollm2.sh). Writes runs/experts/<domain>/ and runs/experts/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${MOEFORGE:-build/release/moeforge}
BASE=${BASE_MODEL:-$HOME/.cache/moeforge/SmolLM2-135M-Instruct.Q4_1.gguf}
VALID=data/mix/validation.jsonl
PER_DOMAIN=${EVAL_PER_DOMAIN:-48}
OUT=runs/experts
[ -x "$BIN" ] || { echo "build first: cmake --preset release && cmake --build --preset release" >&2; exit 1; }
[ -f "$VALID" ] || { echo "$VALID missing: run scripts/prepare-data.sh first" >&2; exit 1; }
[ -f "$BASE" ] || { echo "$BASE missing: run scripts/fetch-smollm2.sh first" >&2; exit 1; }
mkdir -p "$OUT"

domains=("$@")
if [ ${#domains[@]} -eq 0 ]; then domains=(actor analyst coder encyclopedia guardian summarizer thinker writer); fi

for d in "${domains[@]}"; do
  recipe=examples/experts/$d.yaml
  [ -f "$recipe" ] || { echo "no recipe $recipe" >&2; exit 1; }
  extra=()
  if [ -n "${MINUTES:-}" ]; then extra+=(--max-minutes "$MINUTES"); fi
  echo "== training $d expert ($recipe)" >&2
  "$BIN" train "$recipe" "${extra[@]}" > "$OUT/$d.summary.json"
done

# The base model and each expert on every domain: the own domain is the expert's score, the others
# say which single expert is best where (scripts/smolmoe_report.py).
if [ ! -f "$OUT/base.eval.json" ] || [ "$VALID" -nt "$OUT/base.eval.json" ]; then
  echo "== evaluating the base model" >&2
  "$BIN" eval -m "$BASE" --data "$VALID" --max-per-domain "$PER_DOMAIN" --json "$OUT/base.eval.json"
fi
for d in "${domains[@]}"; do
  echo "== evaluating the $d expert on every domain" >&2
  "$BIN" eval -m "$OUT/$d/model" --data "$VALID" --max-per-domain "$PER_DOMAIN" --json "$OUT/$d.eval.json"
done

/usr/bin/python3 - "$OUT" "${domains[@]}" <<'PY'
import json, os, sys
out, domains = sys.argv[1], sys.argv[2:]
base = {r["domain"]: r for r in json.load(open(os.path.join(out, "base.eval.json")))["domains"]}
lines = ["| expert | validation records | base loss | expert loss | change | base ppl | expert ppl | steps | train min | peak RSS MiB |",
         "|---|---|---|---|---|---|---|---|---|---|"]
for d in domains:
    ev = next(r for r in json.load(open(os.path.join(out, f"{d}.eval.json")))["domains"] if r["domain"].lower() == d)
    s = json.load(open(os.path.join(out, f"{d}.summary.json")))
    b = base[ev["domain"]]
    lines.append(f"| {ev['domain']} | {ev['examples']} | {b['loss']:.4f} | {ev['loss']:.4f} | "
                 f"{100 * (ev['loss'] / b['loss'] - 1):+.1f}% | {b['perplexity']:.3f} | {ev['perplexity']:.3f} | "
                 f"{s['steps']} | {s['wall_s'] / 60:.1f} | {s['peak_rss_mib']:.0f} |")
text = "\n".join(lines) + "\n"
open(os.path.join(out, "report.md"), "w").write(text)
print(text)
PY
