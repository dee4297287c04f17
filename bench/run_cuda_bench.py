#!/usr/bin/env python3
"""GPU benchmarks: moeforge's bench_cuda_training and bench_cuda_decode beside PyTorch eager
implementations of the same models on the same GPU in the same run. Prints JSON lines: each
side's median tokens/s (and, for training, model FLOPs utilisation), then a summary.

    bench/run_cuda_bench.py [--config smollm2-moe|moe-0.5b|all] [--steps 10] [--peak-tflops 989]
    bench/run_cuda_bench.py --decode [--batches 1,32]

Decode: SmolLM2-135M's shape and the 8x135M MoE shape with random bf16 weights, 128 prompt
tokens then 128 decode steps per sequence; the reference is Hugging Face transformers'
LlamaForCausalLM / MixtralForCausalLM in bf16 with its KV cache, stepped by hand (no sampling).

The PyTorch side is what people run by default: an nn.Module in the Hugging Face Mixtral style
(router softmax, top-k, renormalise, a loop over experts with index_select / index_add_),
scaled_dot_product_attention, bf16 autocast over fp32 weights, torch.optim.AdamW. No compile.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))

# name: (config, batch, seq, router_only) -- the same shapes as bench/cuda/bench_cuda_training.cpp
CONFIGS = {
    "smollm2-moe": (dict(vocab=49152, hidden=576, inter=1536, layers=30, heads=9, kv_heads=3, experts=8, top_k=2,
                         theta=100000.0, tied=True), 16, 512, True),
    "moe-0.5b": (dict(vocab=32000, hidden=1024, inter=1408, layers=12, heads=16, kv_heads=4, experts=8, top_k=2,
                      theta=10000.0, tied=False), 16, 1024, False),
}


class RMSNorm(torch.nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Attention(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.h, self.kv, self.d = c["heads"], c["kv_heads"], c["hidden"] // c["heads"]
        self.q = torch.nn.Linear(c["hidden"], self.h * self.d, bias=False)
        self.k = torch.nn.Linear(c["hidden"], self.kv * self.d, bias=False)
        self.v = torch.nn.Linear(c["hidden"], self.kv * self.d, bias=False)
        self.o = torch.nn.Linear(self.h * self.d, c["hidden"], bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.h, self.d).transpose(1, 2)
        k = self.k(x).view(B, T, self.kv, self.d).transpose(1, 2)
        v = self.v(x).view(B, T, self.kv, self.d).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        rep = self.h // self.kv
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(y.transpose(1, 2).reshape(B, T, -1))


class Expert(torch.nn.Module):
    def __init__(self, hidden, inter):
        super().__init__()
        self.w1 = torch.nn.Linear(hidden, inter, bias=False)
        self.w3 = torch.nn.Linear(hidden, inter, bias=False)
        self.w2 = torch.nn.Linear(inter, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class SparseMoe(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.E, self.k = c["experts"], c["top_k"]
        self.gate = torch.nn.Linear(c["hidden"], self.E, bias=False)
        self.experts = torch.nn.ModuleList(Expert(c["hidden"], c["inter"]) for _ in range(self.E))

    def forward(self, x):
        B, T, H = x.shape
        x = x.reshape(-1, H)
        logits = self.gate(x).float()
        probs = torch.softmax(logits, dim=-1)
        gates, idx = torch.topk(probs, self.k, dim=-1)
        gates = gates / gates.sum(-1, keepdim=True)
        y = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            token, slot = torch.where(idx == e)
            if token.numel() == 0:
                continue
            out = expert(x.index_select(0, token)) * gates[token, slot].unsqueeze(-1).to(x.dtype)
            y.index_add_(0, token, out.to(y.dtype))
        f = F.one_hot(idx, self.E).float().sum(1).mean(0)
        lb = self.E * (f * probs.mean(0)).sum()
        return y.view(B, T, H), lb


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n1, self.n2 = RMSNorm(c["hidden"]), RMSNorm(c["hidden"])
        self.attn, self.moe = Attention(c), SparseMoe(c)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.n1(x), cos, sin)
        y, lb = self.moe(self.n2(x))
        return x + y, lb


class MoeLM(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed = torch.nn.Embedding(c["vocab"], c["hidden"])
        self.blocks = torch.nn.ModuleList(Block(c) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["hidden"])
        self.head = torch.nn.Linear(c["hidden"], c["vocab"], bias=False)
        if c["tied"]:
            self.head.weight = self.embed.weight

    def forward(self, ids, targets):
        T = ids.shape[1]
        d = self.c["hidden"] // self.c["heads"]
        inv = 1.0 / (self.c["theta"] ** (torch.arange(0, d, 2, device=ids.device).float() / d))
        freqs = torch.outer(torch.arange(T, device=ids.device).float(), inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(torch.bfloat16), emb.sin().to(torch.bfloat16)
        x = self.embed(ids)
        lb_total = 0.0
        for b in self.blocks:
            x, lb = b(x, cos, sin)
            lb_total = lb_total + lb
        logits = self.head(self.norm(x))
        loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))
        return loss + 0.01 * lb_total


def bench_torch(name, steps):
    c, batch, seq, router_only = CONFIGS[name]
    torch.manual_seed(1)
    model = MoeLM(c).cuda()
    for n, p in model.named_parameters():
        if router_only and not n.endswith("moe.gate.weight"):
            p.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0)
    rates = []
    for s in range(steps + 2):
        ids = torch.randint(0, c["vocab"], (batch, seq), device="cuda")
        targets = torch.randint(0, c["vocab"], (batch, seq), device="cuda")
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(ids, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        torch.cuda.synchronize()
        if s >= 2:
            rates.append(batch * seq / (time.perf_counter() - t0))
    return {"bench": "cuda_training", "impl": "pytorch_eager", "torch": torch.__version__, "config": name,
            "router_only": router_only, "batch": batch, "seq": seq, "steps": steps,
            "device": torch.cuda.get_device_name(0), "tokens_per_s": round(statistics.median(rates), 1),
            "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}


DECODE_CONFIGS = {
    "smollm2": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, rope_theta=100000.0, tie_word_embeddings=True,
                    max_position_embeddings=2048),
    "smollm2-moe": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                        num_attention_heads=9, num_key_value_heads=3, rope_theta=100000.0, tie_word_embeddings=True,
                        max_position_embeddings=2048, num_local_experts=8, num_experts_per_tok=2),
}


def bench_torch_decode(name, batch, prompt=128, steps=128, runs=3):
    import transformers
    d = DECODE_CONFIGS[name]
    cfg = transformers.MixtralConfig(**d) if "num_local_experts" in d else transformers.LlamaConfig(**d)
    torch.manual_seed(1)
    model = transformers.AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16).cuda().eval()
    rates = []
    with torch.no_grad():
        for r in range(runs + 1):
            ids = torch.randint(0, d["vocab_size"], (batch, prompt), device="cuda")
            out = model(input_ids=ids, use_cache=True)
            past = out.past_key_values
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(steps):
                nxt = torch.randint(0, d["vocab_size"], (batch, 1), device="cuda")
                out = model(input_ids=nxt, past_key_values=past, use_cache=True)
                past = out.past_key_values
            torch.cuda.synchronize()
            if r:
                rates.append(batch * steps / (time.perf_counter() - t0))
    return {"bench": "cuda_decode", "impl": "pytorch_eager_hf", "torch": torch.__version__,
            "transformers": transformers.__version__, "config": name, "batch": batch, "prompt": prompt,
            "steps": steps, "runs": runs, "tokens_per_s": round(statistics.median(rates), 1)}


def decode_main(args):
    for name in DECODE_CONFIGS:
        for batch in [int(b) for b in args.batches.split(",")]:
            out = subprocess.run([args.decode_bin, "--config", name, "--batch", str(batch)], check=True,
                                 capture_output=True, text=True).stdout
            ours = json.loads(out.strip().splitlines()[-1])
            print(json.dumps(ours), flush=True)
            ref = json.loads(subprocess.run([sys.executable, __file__, "--torch-decode", name, str(batch)],
                                            check=True, capture_output=True, text=True).stdout)
            print(json.dumps(ref), flush=True)
            print(json.dumps({"bench": "cuda_decode_summary", "config": name, "batch": batch,
                              "speedup_vs_torch_eager": round(ours["tokens_per_s"] / ref["tokens_per_s"], 2)}),
                  flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="all", choices=["all"] + list(CONFIGS))
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--peak-tflops", type=float, default=989.0)
    p.add_argument("--bin", default=os.path.join(HERE, "..", "build", "release", "bench", "bench_cuda_training"))
    p.add_argument("--decode", action="store_true", help="the decode benchmark instead of training")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--decode-bin", default=os.path.join(HERE, "..", "build", "release", "bench", "bench_cuda_decode"))
    args = p.parse_args()
    if args.decode:
        decode_main(args)
        return
    for name in (CONFIGS if args.config == "all" else [args.config]):
        _, batch, seq, _ = CONFIGS[name]
        out = subprocess.run([args.bin, "--config", name, "--batch", str(batch), "--seq", str(seq), "--steps",
                              str(args.steps), "--peak-tflops", str(args.peak_tflops)], check=True,
                             capture_output=True, text=True).stdout
        ours = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(ours), flush=True)
        # In a child process, so that each side has the GPU's memory to itself.
        ref = json.loads(subprocess.run([sys.executable, __file__, "--torch-only", name, str(args.steps)],
                                        check=True, capture_output=True, text=True).stdout)
        ref["flops_per_token"] = ours["flops_per_token"]
        ref["mfu"] = round(ref["tokens_per_s"] * ours["flops_per_token"] / (args.peak_tflops * 1e12), 4)
        print(json.dumps(ref), flush=True)
        print(json.dumps({"bench": "cuda_training_summary", "config": name,
                          "speedup_vs_torch_eager": round(ours["tokens_per_s"] / ref["tokens_per_s"], 2),
                          "mfu": ours["mfu"], "torch_mfu": ref["mfu"]}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--torch-only":
        print(json.dumps(bench_torch(sys.argv[2], int(sys.argv[3]))))
    elif len(sys.argv) == 4 and sys.argv[1] == "--torch-decode":
        print(json.dumps(bench_torch_decode(sys.argv[2], int(sys.argv[3]))))
    else:
        main()
