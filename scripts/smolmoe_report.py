#!/usr/bin/env python3
"""SmolMoE's quality table (issue: the fused MoE as good as each domain's own expert), written
from the evaluations scripts/smolmoe.sh leaves in runs/:

  runs/experts/base.eval.json, runs/experts/<domain>.eval.json     validation, every domain
  runs/smolmoe/fused.eval.json, runs/smolmoe/routers.eval.json    validation, every domain
  runs/smolmoe/routers.dispatch.json                              `inspect --data --json`
  runs/smolmoe/test/<model>.eval.json                              the test split (held out)

  scripts/smolmoe_report.py [RUNS_DIR] [OUT_JSON]    # default runs, docs/results/smolmoe-quality.json

Losses are nats per answer token (`moeforge eval`). For each split and domain: the base model,
the domain's own expert, the best single expert on that domain, the MoE with prompt-initialised
routers and with trained routers, and the trained MoE's dispatch accuracy; then the whole mix
(every answer token of the split) for the same models and each expert, and the goals checked."""
import json
import os
import sys

DOMAINS = ["Actor", "Analyst", "Coder", "Encyclopedia", "Guardian", "Summarizer", "Thinker", "Writer"]


def rows(path):
    """domain -> (examples, loss) of one `moeforge eval --json` file; None if it is missing."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return {r["domain"]: (r["examples"], r["loss"]) for r in json.load(f)["domains"]}


def split_table(evals, dispatch):
    """evals: model name -> rows (base, fused, routers and one per expert domain)."""
    experts = {d: evals[d.lower()] for d in DOMAINS if evals.get(d.lower())}
    out = {"domains": [], "mix": {}}
    for d in DOMAINS:
        if d not in evals["routers"]:
            continue
        per_expert = {name: r[d][1] for name, r in experts.items() if d in r}
        # The best single expert only when every expert was scored on this domain (the test
        # split scores each expert on its own domain only, to keep the script's budget).
        best = min(per_expert, key=per_expert.get) if len(per_expert) == len(DOMAINS) else None
        row = {
            "domain": d,
            "records": evals["routers"][d][0],
            "base": evals["base"][d][1],
            "own_expert": per_expert.get(d),
            "best_expert": per_expert.get(best),
            "best_expert_name": best,
            "moe_prompt_routers": evals["fused"][d][1] if evals.get("fused") else None,
            "moe": evals["routers"][d][1],
            "dispatch": dispatch.get(d) if dispatch else None,
        }
        if row["own_expert"] is not None:
            row["moe_vs_own_expert"] = row["moe"] / row["own_expert"] - 1
            row["within_2pct_of_own_expert"] = row["moe"] <= 1.02 * row["own_expert"]
        row["below_base"] = row["moe"] < row["base"]
        out["domains"].append(row)
    # An expert's whole-mix loss only where it was scored on every domain of the split.
    mix_experts = {name: r["all"][1] for name, r in experts.items()
                   if "all" in r and all(d in r for d in evals["routers"] if d != "all")}
    moe = evals["routers"]["all"][1]
    out["mix"] = {
        "records": evals["routers"]["all"][0],
        "base": evals["base"]["all"][1],
        "moe_prompt_routers": evals["fused"]["all"][1] if evals.get("fused") else None,
        "moe": moe,
        "experts": mix_experts,
        "best_single_expert": min(mix_experts.values()) if mix_experts else None,
        "below_every_expert": all(moe < v for v in mix_experts.values()) if len(mix_experts) == len(DOMAINS) else None,
    }
    doms = out["domains"]
    out["goals"] = {
        "moe_within_2pct_of_own_expert_everywhere": all(r.get("within_2pct_of_own_expert", False) for r in doms),
        "moe_below_base_everywhere": all(r["below_base"] for r in doms),
        "moe_below_every_expert_on_mix": out["mix"]["below_every_expert"],
    }
    return out


def main():
    runs = sys.argv[1] if len(sys.argv) > 1 else "runs"
    out_path = sys.argv[2] if len(sys.argv) > 2 else "docs/results/smolmoe-quality.json"
    report = {}
    for split, base_dir, moe_dir, dispatch_file in (
            ("validation", os.path.join(runs, "experts"), os.path.join(runs, "smolmoe"), "routers.dispatch.json"),
            ("test", os.path.join(runs, "smolmoe", "test"), os.path.join(runs, "smolmoe", "test"), None)):
        evals = {"base": rows(os.path.join(base_dir, "base.eval.json")),
                 "fused": rows(os.path.join(moe_dir, "fused.eval.json")),
                 "routers": rows(os.path.join(moe_dir, "routers.eval.json"))}
        for d in DOMAINS:
            evals[d.lower()] = rows(os.path.join(base_dir, d.lower() + ".eval.json"))
        if evals["base"] is None or evals["routers"] is None:
            print(f"{split}: no evaluations in {base_dir} / {moe_dir}; left out", file=sys.stderr)
            continue
        dispatch = None
        if dispatch_file and os.path.exists(os.path.join(moe_dir, dispatch_file)):
            with open(os.path.join(moe_dir, dispatch_file)) as f:
                dispatch = json.load(f)["dispatch_accuracy"]
        report[split] = split_table(evals, dispatch)
    recipe = os.path.join(runs, "smolmoe", "routers", "summary.json")
    if os.path.exists(recipe):
        with open(recipe) as f:
            s = json.load(f)
        report["router_training"] = {k: s[k] for k in ("steps", "wall_s", "tokens_per_s", "peak_rss_mib") if k in s}
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    os.replace(tmp, out_path)
    for split in ("validation", "test"):
        if split not in report:
            continue
        t = report[split]
        print(f"## {split}")
        print("| domain | records | base | own expert | best expert | MoE prompt routers | MoE | vs own | dispatch |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        fmt = lambda v: "" if v is None else f"{v:.4f}"
        for r in t["domains"]:
            vs = r.get("moe_vs_own_expert")
            disp = r.get("dispatch")
            print(f"| {r['domain']} | {r['records']} | {fmt(r['base'])} | {fmt(r['own_expert'])} | "
                  f"{fmt(r['best_expert'])} {'(' + r['best_expert_name'] + ')' if r['best_expert_name'] else ''} | "
                  f"{fmt(r['moe_prompt_routers'])} | "
                  f"{fmt(r['moe'])} | {'' if vs is None else f'{100 * vs:+.1f}%'} | "
                  f"{'' if disp is None else f'{100 * disp:.1f}%'} |")
        m = t["mix"]
        print(f"| all | {m['records']} | {fmt(m['base'])} | | {fmt(m['best_single_expert'])} | "
              f"{fmt(m['moe_prompt_routers'])} | {fmt(m['moe'])} | | |")
        print("goals:", json.dumps(t["goals"]))
    print(f"written to {out_path}")


if __name__ == "__main__":
    main()
