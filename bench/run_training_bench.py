#!/usr/bin/python3
"""Training benchmark: moeforge's bench_training beside a PyTorch eager reference of the same
MoE (HF-Mixtral-style loop over experts, tests/reference/torch_ref), same config, same threads,
same run. Prints JSON lines: each implementation's median tokens/s and peak RSS, and a summary.

    bench/run_training_bench.py [--config shakespeare|smollm2-moe|all] [--steps 3] [--threads 2]

shakespeare: the char-level MoE of examples/shakespeare-moe.yaml, full training, batch 16 x 256.
smollm2-moe: a SmolLM2-135M-shaped MoE (30 layers, 8 experts, top-2), router-only training
(experts, attention and embeddings frozen), batch 4 x 256.
smollm2-moe-top1: the same at top-1 with renormalised gates, as the fused SmolMoE routes. The LM
loss gives such routers no gradient; moeforge's step is a forward that adds the aux loss's router
gradients, the peer runs autograd's full backward as a transformers Mixtral training loop would.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_env import peak_rss_mib, probe_torch_blas, require_tuned_blas, torch_env  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
import torch_ref  # noqa: E402
from torch_ref import model as M  # noqa: E402

CONFIGS = {
    "shakespeare": ({"model_type": "mixtral", "vocab_size": 69, "hidden_size": 128, "intermediate_size": 256,
                     "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "num_local_experts": 8, "num_experts_per_tok": 2, "tie_word_embeddings": True,
                     "max_position_embeddings": 512}, 16, 256, False),
    "smollm2-moe": ({"model_type": "mixtral", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
                     "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                     "num_local_experts": 8, "num_experts_per_tok": 2, "tie_word_embeddings": True,
                     "rope_theta": 100000.0, "max_position_embeddings": 2048}, 4, 256, True),
}
CONFIGS["smollm2-moe-top1"] = ({**CONFIGS["smollm2-moe"][0], "num_experts_per_tok": 1}, 4, 256, True)


# Configs whose norms are frozen too (only the routers train), as the SmolMoE router recipe does.
FROZEN_NORMS = {"smollm2-moe-top1"}


def frozen(name, router_only, norms=False):
    return router_only and (".experts." in name or "self_attn" in name or "embed_tokens" in name
                            or (norms and "norm" in name))


def bench_torch(name, steps, threads):
    torch.set_num_threads(threads)
    d, batch, seq, router_only = CONFIGS[name]
    cfg = torch_ref.Config(d)
    sd = torch_ref.random_state_dict(cfg, seed=1, std=0.02)
    params = {k: v.requires_grad_(not frozen(k, router_only, name in FROZEN_NORMS)) for k, v in sd.items()}
    trainable = [v for v in params.values() if v.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0)
    g = torch.Generator().manual_seed(5)
    rates, cpu_rates = [], []  # tokens per wall second, per CPU second of the process (all threads)
    for s in range(steps + 1):
        ids = torch.randint(0, cfg.vocab_size, (batch, seq), generator=g)
        targets = torch.randint(0, cfg.vocab_size, (batch, seq), generator=g)
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        logits, routers = M.forward.__wrapped__(cfg, params, ids)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab_size), targets.reshape(-1))
        for r in routers:  # Switch/Mixtral load balancing, as moeforge adds it
            p = torch.softmax(r, dim=-1)
            idx = torch.topk(p, cfg.top_k, dim=-1).indices
            f = torch.nn.functional.one_hot(idx, cfg.num_experts).float().sum(1).mean(0)
            loss = loss + 0.01 * cfg.num_experts * (f * p.mean(0)).sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        if s:
            rates.append(batch * seq / (time.perf_counter() - t0))
            cpu_rates.append(batch * seq / (time.process_time() - c0))
    return {"bench": "training", "impl": "pytorch_eager", "torch": torch.__version__, "config": name,
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "auto"),
            "torch_num_threads": torch.get_num_threads(),
            "router_only": router_only, "batch": batch, "seq": seq, "threads": threads, "steps": steps,
            "trainable_params": sum(v.numel() for v in trainable),
            "tokens_per_s": round(statistics.median(rates), 1),
            "tokens_per_cpu_s": round(statistics.median(cpu_rates), 1), "peak_rss_mb": round(peak_rss_mib(), 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="all", choices=["all"] + list(CONFIGS))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bin", default=os.path.join(HERE, "..", "build", "release", "bench", "bench_training"))
    p.add_argument("--python", default=sys.executable, help="the peer's interpreter (e.g. a venv with a PyPI torch)")
    p.add_argument("--allow-reference-blas", action="store_true", help="measure a peer on the netlib reference BLAS")
    args = p.parse_args()
    blas = probe_torch_blas(args.python, args.threads)
    blas["allowed_reference_blas"] = args.allow_reference_blas
    print(json.dumps({"bench": "training_peer_blas", **blas}), flush=True)
    require_tuned_blas(blas, args.allow_reference_blas)
    for name in (CONFIGS if args.config == "all" else [args.config]):
        _, batch, seq, _ = CONFIGS[name]
        out = subprocess.run([args.bin, "--config", name, "--batch", str(batch), "--seq", str(seq), "--steps",
                              str(args.steps), "--threads", str(args.threads)], check=True, capture_output=True,
                             text=True).stdout
        ours = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(ours), flush=True)
        # The reference runs in a child so its peak memory is its own.
        ref = json.loads(subprocess.run([args.python, __file__, "--torch-only", name, str(args.steps),
                                         str(args.threads)], check=True, capture_output=True, text=True,
                                        env=torch_env()).stdout)
        print(json.dumps(ref), flush=True)
        print(json.dumps({"bench": "training_summary", "config": name,
                          "speedup_vs_torch": round(ours["tokens_per_s"] / ref["tokens_per_s"], 2),
                          "cpu_efficiency_vs_torch": round(ours["tokens_per_cpu_s"] / ref["tokens_per_cpu_s"], 2),
                          "rss_ratio_vs_torch": round(ours["peak_rss_mb"] / ref["peak_rss_mb"], 3)}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--torch-only":
        print(json.dumps(bench_torch(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
    else:
        main()
