#!/usr/bin/python3
"""End-to-end inference benchmark: moeforge beside a PyTorch eager reference, same model, same run.

    bench/run_inference_bench.py -m ~/.cache/moeforge/SmolLM2-135M-Instruct.Q4_1.gguf \
        [--bin build/release/bench/bench_inference] [--prompt-tokens 256] [--decode-tokens 64] \
        [--repeats 5] [--threads 2]

Prints JSON lines: the machine's read bandwidth and moeforge's figures (from bench_inference:
the file's own weight format with the packed decode layout as the CLI runs it, the same on the
stored layout, the same with int8 activations, and every matrix dequantized to fp32), PyTorch's
figures (fp32 weights dequantized from the same file, KV cache, eager mode), and a summary with
the speed-ups and how far decode is from the bandwidth limit.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_env import peak_rss_mib, probe_torch_blas, require_tuned_blas, torch_env  # noqa: E402


def parse_args():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-m", "--model", required=True, help="a llama-architecture .gguf file")
    p.add_argument("--bin", default=os.path.join(here, "..", "build", "release", "bench", "bench_inference"))
    p.add_argument("--prompt-tokens", type=int, default=256)
    p.add_argument("--decode-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--python", default=sys.executable, help="the peer's interpreter (e.g. a venv with a PyPI torch)")
    p.add_argument("--allow-reference-blas", action="store_true", help="measure a peer on the netlib reference BLAS")
    p.add_argument("--torch-only", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()


def gguf_llama_weights(path):
    """fp32 torch tensors with Hugging Face layout from a llama GGUF (Q/K rows un-permuted)."""
    import gguf

    reader = gguf.GGUFReader(path)

    def field(key):
        f = reader.fields[key]
        return f.parts[f.data[0]].tolist()[0] if len(f.data) == 1 else [f.parts[i] for i in f.data]

    cfg = {
        "layers": int(field("llama.block_count")),
        "hidden": int(field("llama.embedding_length")),
        "heads": int(field("llama.attention.head_count")),
        "kv_heads": int(field("llama.attention.head_count_kv")),
        "theta": float(field("llama.rope.freq_base")),
        "eps": float(field("llama.attention.layer_norm_rms_epsilon")),
    }
    tensors = {}
    for t in reader.tensors:
        shape = [int(d) for d in reversed(t.shape.tolist())]
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        tensors[t.name] = torch.from_numpy(np.array(values, dtype=np.float32).reshape(shape))  # a copy: the mapping is read-only
    head_dim = cfg["hidden"] // cfg["heads"]

    def unpermute(w, n_head):  # llama.cpp stores Q/K rows interleaved for its RoPE
        return w.reshape(n_head, head_dim // 2, 2, -1).transpose(1, 2).reshape(w.shape)

    for i in range(cfg["layers"]):
        tensors[f"blk.{i}.attn_q.weight"] = unpermute(tensors[f"blk.{i}.attn_q.weight"], cfg["heads"])
        tensors[f"blk.{i}.attn_k.weight"] = unpermute(tensors[f"blk.{i}.attn_k.weight"], cfg["kv_heads"])
    if "output.weight" not in tensors:
        tensors["output.weight"] = tensors["token_embd.weight"]
    cfg["vocab"] = tensors["token_embd.weight"].shape[0]
    return cfg, tensors


class EagerLlama:
    """The plainest fast eager implementation: F.linear, a preallocated KV cache, no graph tricks."""

    def __init__(self, cfg, w, max_len):
        self.c, self.w = cfg, w
        self.D = cfg["hidden"] // cfg["heads"]
        inv = 1.0 / (cfg["theta"] ** (torch.arange(0, self.D, 2, dtype=torch.float64) / self.D))
        ang = torch.arange(max_len, dtype=torch.float64)[:, None] * inv[None, :]
        ang = torch.cat([ang, ang], dim=-1)
        self.cos, self.sin = ang.cos().float(), ang.sin().float()
        self.k = [torch.zeros(max_len, cfg["kv_heads"], self.D) for _ in range(cfg["layers"])]
        self.v = [torch.zeros(max_len, cfg["kv_heads"], self.D) for _ in range(cfg["layers"])]

    def rms(self, x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c["eps"]) * g

    def rope(self, x, pos0):
        T, half = x.shape[0], self.D // 2
        cos, sin = self.cos[pos0:pos0 + T, None, :], self.sin[pos0:pos0 + T, None, :]
        rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rot * sin

    def forward(self, ids, pos0):
        c, w, D = self.c, self.w, self.D
        T, H, KV = ids.shape[0], c["heads"], c["kv_heads"]
        S = pos0 + T
        x = w["token_embd.weight"][ids]
        mask = torch.full((T, S), float("-inf")).triu(pos0 + 1)
        for i in range(c["layers"]):
            p = f"blk.{i}."
            h = self.rms(x, w[p + "attn_norm.weight"])
            q = self.rope(F.linear(h, w[p + "attn_q.weight"]).view(T, H, D), pos0)
            self.k[i][pos0:S] = self.rope(F.linear(h, w[p + "attn_k.weight"]).view(T, KV, D), pos0)
            self.v[i][pos0:S] = F.linear(h, w[p + "attn_v.weight"]).view(T, KV, D)
            k = self.k[i][:S].repeat_interleave(H // KV, dim=1).transpose(0, 1)
            v = self.v[i][:S].repeat_interleave(H // KV, dim=1).transpose(0, 1)
            att = torch.softmax(q.transpose(0, 1) @ k.transpose(1, 2) / math.sqrt(D) + mask, dim=-1)
            o = (att @ v).transpose(0, 1).reshape(T, H * D)
            x = x + F.linear(o, w[p + "attn_output.weight"])
            h = self.rms(x, w[p + "ffn_norm.weight"])
            g = F.silu(F.linear(h, w[p + "ffn_gate.weight"])) * F.linear(h, w[p + "ffn_up.weight"])
            x = x + F.linear(g, w[p + "ffn_down.weight"])
        return F.linear(self.rms(x[-1:], w["output_norm.weight"]), w["output.weight"])


def bench_torch(args):
    torch.set_num_threads(args.threads)
    cfg, w = gguf_llama_weights(args.model)
    model = EagerLlama(cfg, w, args.prompt_tokens + args.decode_tokens + 1)
    gen = torch.Generator().manual_seed(1234)
    prompt = torch.randint(0, cfg["vocab"], (args.prompt_tokens,), generator=gen)
    prefill, decode = [], []
    with torch.inference_mode():
        for r in range(args.repeats + 1):  # the first run warms up and is dropped
            t0 = time.perf_counter()
            logits = model.forward(prompt, 0)
            t1 = time.perf_counter()
            pos = args.prompt_tokens
            for _ in range(args.decode_tokens):
                nxt = logits[-1].argmax().view(1)
                logits = model.forward(nxt, pos)
                pos += 1
            t2 = time.perf_counter()
            if r:
                prefill.append(args.prompt_tokens / (t1 - t0))
                decode.append(args.decode_tokens / (t2 - t1))
    return {
        "bench": "inference", "impl": "pytorch_eager_fp32", "torch": torch.__version__,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "auto"),
        "model": args.model, "threads": args.threads, "prompt_tokens": args.prompt_tokens,
        "decode_tokens": args.decode_tokens, "repeats": args.repeats,
        "prefill_tok_s": round(statistics.median(prefill), 2),
        "decode_tok_s": round(statistics.median(decode), 2),
        "peak_rss_mb": round(peak_rss_mib(), 1),
    }


def run_moeforge(args, weights, decode):
    cmd = [args.bin, "-m", args.model, "--prompt-tokens", str(args.prompt_tokens),
           "--decode-tokens", str(args.decode_tokens), "--repeats", str(args.repeats),
           "--threads", str(args.threads), "--weights", weights, "--decode", decode]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = None
    for line in out.splitlines():
        print(line, flush=True)
        rec = json.loads(line)
        if rec.get("bench") == "inference":
            result = rec
    return result


def main():
    args = parse_args()
    if args.torch_only:
        print(json.dumps(bench_torch(args)))
        return
    if not args.skip_torch:
        blas = probe_torch_blas(args.python, args.threads)
        blas["allowed_reference_blas"] = args.allow_reference_blas
        print(json.dumps({"bench": "inference_peer_blas", **blas}), flush=True)
        require_tuned_blas(blas, args.allow_reference_blas)
    runs = {  # name: (weights, decode layout)
        "native": ("native", "packed"),        # the file's own format (Q4_1 for SmolLM2), as the CLI runs it
        "native_plain": ("native", "plain"),   # same, decode kernels on the stored layout
        "native_int8": ("native", "int8"),     # same, int8 activations (--int8)
        "f32": ("f32", "plain"),               # dequantized at load: the fp32-vs-fp32 comparison
    }
    got = {name: run_moeforge(args, w, d) for name, (w, d) in runs.items()}
    if args.skip_torch:
        return
    # The reference runs in a child: its own peak memory, and OpenBLAS told its core type first.
    cmd = [args.python, __file__, "--torch-only", "-m", args.model, "--prompt-tokens", str(args.prompt_tokens),
           "--decode-tokens", str(args.decode_tokens), "--repeats", str(args.repeats), "--threads", str(args.threads)]
    ref = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=torch_env()).stdout)
    print(json.dumps(ref), flush=True)
    summary = {
        "bench": "inference_summary", "threads": args.threads,
        "prefill_speedup_vs_torch_fp32": round(got["f32"]["prefill_tok_s"] / ref["prefill_tok_s"], 2),
    }
    for name, r in got.items():
        summary[f"decode_speedup_{name}_vs_torch_fp32"] = round(r["decode_tok_s"] / ref["decode_tok_s"], 2)
        summary[f"decode_dram_limit_over_achieved_{name}"] = r["dram_limit_over_achieved"]
        summary[f"decode_working_set_limit_over_achieved_{name}"] = r["working_set_limit_over_achieved"]
    summary["rss_ratio_f32_vs_torch"] = round(got["f32"]["peak_rss_mb"] / ref["peak_rss_mb"], 3)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    sys.exit(main())
