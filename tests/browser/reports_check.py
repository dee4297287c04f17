#!/usr/bin/env python3
"""The static reports in a real browser (label "browser"): two tiny MoE runs trained by
`moeforge train` and overlaid by `moeforge plot RUN1 RUN2`, a one-step run plotted alone (every
series a single point), and the routing page of
`moeforge inspect --data -o` on a 2-expert MoE fused from a tiny dense model (experts named after
the data's domains, so dispatch accuracy means something), each checked in headless Chromium by
report_check.py, with screenshots in WORK_DIR (plot.png, plot-routing.png,
plot-expert-load.png, inspect-routing.png).

    reports_check.py WORK_DIR [--steps N]     ($MOEFORGE_BIN is the CLI)

--steps lengthens the training runs (the screenshots in docs/img use 120).
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("MOEFORGE_BIN", "")

MOE_CONFIG = ("{model_type: mixtral, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,\n"
              "           num_attention_heads: 4, num_key_value_heads: 2, num_local_experts: 4,\n"
              "           num_experts_per_tok: 2, max_position_embeddings: 64, tie_word_embeddings: true}")
DENSE_CONFIG = ("{model_type: llama, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,\n"
                "           num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128,\n"
                "           tie_word_embeddings: true}")


def moeforge(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: moeforge {' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]}")
    return r.stdout


def check(page, *args):
    r = subprocess.run([sys.executable, os.path.join(HERE, "report_check.py"), page, *args])
    if r.returncode != 0:
        sys.exit(r.returncode)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    if not BIN:
        sys.exit("FAIL: MOEFORGE_BIN is not set")
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "corpus.txt"), "w") as f:
        f.write("<|im_start|>system user assistant<|im_end|>\n")
        for i in range(300):
            f.write(f"write code for the cat. solve math for the dog. to be or not to be. {i % 10}\n")

    # Two runs of one recipe, different learning rates, validation every quarter of the run.
    steps = args.steps
    with open(os.path.join(work, "tiny-moe.yaml"), "w") as f:
        f.write(f"model:\n  init: scratch\n  config: {MOE_CONFIG}\n"
                "tokenizer: char\ndata: {train: corpus.txt, valid_fraction: 0.1}\n"
                f"train: {{steps: {steps}, batch: 4, seq_len: 32, lr: 3.0e-3, warmup: {max(1, steps // 10)}, "
                f"eval_every: {max(1, steps // 4)}, eval_windows: 2, lb_coef: 0.01, z_coef: 0.001}}\n"
                "output: run\n")
    for name, lr in (("lr-3e-3", "0.003"), ("lr-1e-2", "0.01")):
        moeforge("train", os.path.join(work, "tiny-moe.yaml"), "--quiet", "-o", os.path.join(work, name),
                 "--set", f"train.lr={lr}")
    plot = os.path.join(work, "plot.html")
    moeforge("plot", os.path.join(work, "lr-3e-3"), os.path.join(work, "lr-1e-2"), "-o", plot)
    check(plot, "--kind", "plot", "--runs", "2",
          "--shot", f"h1:1150:{os.path.join(work, 'plot.png')}",
          "--shot", f"#routing:1100:{os.path.join(work, 'plot-routing.png')}",
          "--shot", f"figure.heatmap:560:{os.path.join(work, 'plot-expert-load.png')}")

    # One step: every series is a single point, which must still show as a dot.
    moeforge("train", os.path.join(work, "tiny-moe.yaml"), "--quiet", "-o", os.path.join(work, "one-step"),
             "--set", "train.steps=1")
    moeforge("plot", os.path.join(work, "one-step"))
    check(os.path.join(work, "one-step", "report.html"), "--kind", "plot", "--runs", "1")

    # A 2-expert MoE fused from a tiny dense model, routed over data labelled with its experts' names.
    with open(os.path.join(work, "dense.yaml"), "w") as f:
        f.write(f"model:\n  init: scratch\n  config: {DENSE_CONFIG}\n"
                "tokenizer: char\ndata: {train: corpus.txt, valid_fraction: 0.1}\n"
                "train: {steps: 10, batch: 4, seq_len: 32, lr: 3.0e-3, warmup: 2, eval_windows: 2}\n"
                f"output: {os.path.join(work, 'dense')}\n")
    moeforge("train", os.path.join(work, "dense.yaml"), "--quiet")
    base = os.path.join(work, "dense", "model")
    with open(os.path.join(work, "fuse.yaml"), "w") as f:
        f.write(f"skeleton: {base}\nexperts:\n"
                f"  - {{name: Coder, source: {base}, positive: [\"write code for the cat\"]}}\n"
                f"  - {{name: Thinker, source: {base}, positive: [\"solve math for the dog\"], negative: [\"write code\"]}}\n"
                "top_k: 1\nrouter_init: {method: prompts}\n"
                f"output: {os.path.join(work, 'fused')}\n")
    moeforge("fuse", os.path.join(work, "fuse.yaml"), "--quiet")
    with open(os.path.join(work, "split.jsonl"), "w") as f:
        for _ in range(6):
            f.write(json.dumps({"instruction": "write code", "output": "for the cat", "domain": "Coder"}) + "\n")
            f.write(json.dumps({"instruction": "solve math", "output": "for the dog", "domain": "Thinker"}) + "\n")
            f.write(json.dumps({"instruction": "to be", "output": "or not to be", "domain": "Poet"}) + "\n")
    routes = os.path.join(work, "routes.html")
    moeforge("inspect", "-m", os.path.join(work, "fused"), "--data", os.path.join(work, "split.jsonl"),
             "-o", routes, "--quiet")
    check(routes, "--kind", "routing", "--width", "900",
          "--shot", f"h1:720:{os.path.join(work, 'inspect-routing.png')}")
    print("OK: the plot and routing pages read well in Chromium")


if __name__ == "__main__":
    main()
