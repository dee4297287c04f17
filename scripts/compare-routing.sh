#!/usr/bin/env bash
# Trains the makeMoE model (examples/makemoe.yaml) once per routing policy at the same step
# budget, then writes the comparison table (docs/routing.md shows the measured one).
#   scripts/compare-routing.sh                 # every policy, STEPS=3000 each (~5 minutes each on 2 cores)
#   STEPS=500 scripts/compare-routing.sh noisy_topk switch   # some of them, shorter
# A run whose directory already has a summary.json is not trained again.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${MOEFORGE:-build/release/moeforge}
STEPS=${STEPS:-3000}
OUT=${OUT:-runs/makemoe}
RECIPE=examples/makemoe.yaml
M=model.config

declare -A POLICY=(
  # makeMoE itself: noisy top-2, capacity 1.0, no balance loss.
  [noisy_topk]=""
  # Mixtral: softmax over all experts, top-2, renormalised; dropless; Switch/Mixtral balance loss.
  [softmax_topk]="--set $M.router_policy=softmax_topk --set $M.capacity_factor=0 --set train.lb_coef=0.01"
  # makeMoE's router without noise: top-2 logits, softmax over them; dropless.
  [topk_softmax]="--set $M.router_policy=topk_softmax --set $M.capacity_factor=0 --set train.lb_coef=0.01"
  # GShard-style: softmax top-2 with capacity 1.0 (tokens over capacity keep their residual).
  [softmax_topk_cap1]="--set $M.router_policy=softmax_topk --set train.lb_coef=0.01"
  # Switch Transformer: top-1, capacity 1.25, Switch balance loss; twice the experts' width so
  # a token uses the same expert parameters as top-2.
  [switch]="--set $M.router_policy=switch --set $M.num_experts_per_tok=1 --set $M.intermediate_size=688 --set $M.capacity_factor=1.25 --set train.lb_coef=0.01"
  # Expert choice: each expert takes its top 2T/E tokens; no balance loss.
  [expert_choice]="--set $M.router_policy=expert_choice --set $M.capacity_factor=2"
  # DeepSeek-V3 auxiliary-loss-free balancing: selection bias moved 1e-3 per step, no balance loss.
  [aux_free_bias]="--set $M.router_policy=softmax_topk --set $M.capacity_factor=0 --set $M.router_selection_bias=true --set train.balance_bias_rate=0.001"
  # Shared expert + top-1 routed expert (DeepSeek-MoE / residual MoE as in PR-MoE): same active width.
  [shared_top1]="--set $M.router_policy=softmax_topk --set $M.num_experts_per_tok=1 --set $M.capacity_factor=0 --set $M.shared_expert_intermediate_size=344 --set $M.shared_expert_gate=false --set train.lb_coef=0.01"
  # Mixtral routing with the balance loss per sequence and the router z-loss.
  [per_sequence_zloss]="--set $M.router_policy=softmax_topk --set $M.capacity_factor=0 --set train.lb_coef=0.01 --set train.lb_scope=sequence --set train.z_coef=0.001"
  # Pyramid-residual MoE (PR-MoE): 4 experts in the first four layers, 8 in the last four, each
  # token through a dense MLP plus its top-1 expert.
  [pyramid_residual]="--set $M.router_policy=softmax_topk --set $M.num_experts_per_tok=1 --set $M.capacity_factor=0 --set $M.moe_layer_experts=[4,4,4,4,8,8,8,8] --set $M.shared_expert_intermediate_size=344 --set $M.shared_expert_gate=false --set train.lb_coef=0.01"
  # Mixtral routing with the first layer dense (DeepSeek's first_k_dense_replace).
  [first_layer_dense]="--set $M.router_policy=softmax_topk --set $M.capacity_factor=0 --set $M.first_k_dense_replace=1 --set $M.intermediate_size=344 --set train.lb_coef=0.01"
  # A dense model with the same active FFN width (2 x 344), for scale.
  [dense_same_active]="--set $M.model_type=llama --set $M.intermediate_size=688"
)
ALL=(noisy_topk softmax_topk topk_softmax softmax_topk_cap1 switch expert_choice aux_free_bias shared_top1
     pyramid_residual first_layer_dense per_sequence_zloss dense_same_active)
ORDER=("${ALL[@]}")
if [ $# -gt 0 ]; then ORDER=("$@"); fi

for name in "${ORDER[@]}"; do
  [ -n "${POLICY[$name]+x}" ] || { echo "unknown policy run '$name' (known: ${!POLICY[*]})" >&2; exit 2; }
  dir=$OUT/$name
  if [ -f "$dir/summary.json" ]; then echo "== $name: already trained ($dir)"; continue; fi
  echo "== $name"
  # shellcheck disable=SC2086
  "$BIN" train "$RECIPE" --max-steps "$STEPS" --set train.max_minutes=0 -o "$dir" ${POLICY[$name]}
done
# The table lists every finished run, in the order above.
dirs=()
for name in "${ALL[@]}"; do [ -f "$OUT/$name/summary.json" ] && dirs+=("$OUT/$name"); done
"$BIN" compare "${dirs[@]}" --markdown -o "$OUT/comparison.md"
