#!/usr/bin/python3
"""Training benchmark: moeforge's bench_training beside PyTorch peers training the same MoE
(same config, same threads, same run), each run in its own child process. Prints JSON lines: one
per run, a summary per (config, peer) with medians over the rounds, and lines for peers skipped.

    bench/run_training_bench.py [--config shakespeare|smollm2-moe|smollm2-moe-top1|pretrain-bpe-moe|all] [--steps 3]
        [--threads 2] [--rounds 3] [--peers eager,sdpa,sdpa-fused,sdpa-compile]
        [--python ~/.cache/torch-venv/bin/python,/usr/bin/python3] [--check-math]

Configs. shakespeare: the char-level MoE of examples/shakespeare-moe.yaml, full training, batch
16 x 256. smollm2-moe: a SmolLM2-135M-shaped MoE (30 layers, 8 experts, top-2), router-only
training (experts, attention and embeddings frozen), batch 4 x 256. smollm2-moe-top1: the same at
top-1 with renormalised gates, as the fused SmolMoE routes, norms frozen too. The LM loss gives
such routers no gradient; moeforge's step is a forward that adds the aux loss's router gradients,
the peers run autograd's full backward as a transformers Mixtral training loop would.
pretrain-bpe-moe: the MoE-LLM pretraining shape of examples/pretrain-bpe-moe.yaml (4 layers,
hidden 192, 8 experts of 384, top-2, GQA 6/2, SmolLM2's 49,152-token vocabulary, tied
embeddings), full training, batch 8 x 256 (the recipe's z-loss and weight decay are left out: every
config here trains on the same loss and AdamW settings).

Peers. Every peer computes the same step: the same model shape (random weights, each engine's
own: moeforge's initializer and tests/reference's random_state_dict), cross-entropy plus the
Switch/Mixtral load-balancing term (0.01 * E * sum f_e P_e per MoE layer), the same frozen
parameters, gradient clipping at 1.0, AdamW (lr 1e-4, no weight decay), subnormal floats flushed
to zero as moeforge's trainer does (torch.set_flush_denormal). The variants change only how torch
computes it:

  eager         the reference model of tests/reference/torch_ref as it is: masked-softmax
                attention, the HF-Mixtral-style loop over experts (routing through numpy), the
                default (for-loop) AdamW.
  sdpa          the same math written as a current user would: F.scaled_dot_product_attention
                with is_causal (GQA through enable_gqa where torch has it), RoPE tables built once
                per step, the transformers Mixtral expert loop in torch alone, AdamW(foreach=True).
                Needs torch >= 2.0.
  sdpa-fused    sdpa with AdamW(fused=True) (needs a torch whose fused AdamW runs on CPU).
  sdpa-compile  sdpa-fused (foreach AdamW where fused is missing) with the forward and the loss
                under torch.compile, default inductor backend, the optimizer step not compiled.
                Compiled by region, as PyTorch recommends for stacks of identical blocks: the
                decoder layer (one graph serves every layer, attention and expert loop included)
                and the head + loss, each with fullgraph=True, dynamo told to trace the expert
                loop's data-dependent torch.where (capture_dynamic_output_shape_ops; without it the
                loop's graph break makes dynamo skip the whole forward and run it eagerly). Two
                untimed warm-up steps (the compilation, 20-60 s); the run line records the graphs
                compiled, any graph break, and whether some part fell back to eager.

Each peer is an (interpreter, variant) pair, labelled e.g. `torch-2.15.0:sdpa-compile`: --python
takes several interpreters, comma-separated; each is probed for the BLAS its torch runs on
(refused if that is the netlib reference BLAS, unless --allow-reference-blas) and for the variants
it can run; a variant it cannot run gets a `training_peer_skipped` line saying why, a compilation
that fails a `training_peer_failed` line, and the driver goes on.

Rounds. Each round runs every config with moeforge and every peer, one child process each (so
each peak RSS is its own), in an order rotated by one engine per round. A run's line records its
median tokens/s over the timed steps (wall, and per CPU second of the process: all threads, user
+ system), peak RSS (VmHWM; for peers also the peak over the timed steps alone), the 1-minute load
average just before it started, and the child's total wall and CPU seconds (start-up, warm-up and
compilation included). The summary gives medians over rounds and the ratios moeforge / peer.
--check-math first compares each sdpa-family variant's loss and gradients with eager's on a small
batch, in every interpreter that runs them.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_env import peak_rss_mib, probe_torch_blas, require_tuned_blas, torch_env  # noqa: E402

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
CONFIGS["pretrain-bpe-moe"] = ({"model_type": "mixtral", "vocab_size": 49152, "hidden_size": 192,
                                "intermediate_size": 384, "num_hidden_layers": 4, "num_attention_heads": 6,
                                "num_key_value_heads": 2, "num_local_experts": 8, "num_experts_per_tok": 2,
                                "tie_word_embeddings": True, "rope_theta": 10000.0,
                                "max_position_embeddings": 512}, 8, 256, False)


# Configs whose norms are frozen too (only the routers train), as the SmolMoE router recipe does.
FROZEN_NORMS = {"smollm2-moe-top1"}

VARIANTS = ("eager", "sdpa", "sdpa-fused", "sdpa-compile")
WARMUP = {"sdpa-compile": 2}  # untimed steps before the timed ones; 1 elsewhere, as bench_training


def frozen(name, router_only, norms=False):
    return router_only and (".experts." in name or "self_attn" in name or "embed_tokens" in name
                            or (norms and "norm" in name))


# --- the PyTorch child ------------------------------------------------------------------------

torch = F = None  # imported by the child alone (the driver needs no torch)


def _import_torch():
    global torch, F
    import torch
    import torch.nn.functional as F


def _torch_ref():
    _import_torch()
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
    import torch_ref
    from torch_ref import model as M
    return torch_ref, M


def capabilities():
    """What this interpreter's torch can run: {variant: None or the reason it cannot}."""
    _import_torch()
    major_minor = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
    why = {"eager": None}
    has_sdpa = major_minor >= (2, 0) and hasattr(torch.nn.functional, "scaled_dot_product_attention")
    why["sdpa"] = None if has_sdpa else \
        f"torch {torch.__version__} has no F.scaled_dot_product_attention with is_causal (torch >= 2.0)"
    fused = None
    try:
        w = torch.zeros(4, requires_grad=True)
        w.grad = torch.ones(4)
        torch.optim.AdamW([w], lr=1e-4, weight_decay=0.0, fused=True).step()
    except Exception as e:  # noqa: BLE001 - any refusal means no fused AdamW here
        fused = f"AdamW(fused=True) on CPU fails in torch {torch.__version__}: {type(e).__name__}: {e}"[:300]
    why["sdpa-fused"] = why["sdpa"] or fused
    has_compile = major_minor >= (2, 0) and hasattr(torch, "compile")
    why["sdpa-compile"] = why["sdpa"] or (None if has_compile else f"torch {torch.__version__} has no torch.compile")
    return {"torch": torch.__version__, "fused_adamw_cpu": fused is None, "why_not": why}


def _rope_tables(T, D, theta):
    """cos, sin [T, D] exactly as torch_ref.model.rope builds them."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    ang = torch.arange(T).float()[:, None] * inv_freq[None, :]
    emb = torch.cat([ang, ang], dim=-1)
    return emb.cos(), emb.sin()


def _apply_rope(x, cos, sin):
    d = x.shape[-1]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def decoder_layer(x, cos, sin, w, H, KV, E, K, eps, norm_topk, gqa):
    """One Mixtral decoder layer on x [B, T, hidden] as a current PyTorch user writes it: SDPA
    with is_causal, and the transformers Mixtral expert loop (one_hot mask, torch.where,
    index_add) in torch alone. w: the layer's weights (ln1, q, k, v, o, ln2, gate, w1s, w3s,
    w2s). Returns (x, router logits [B*T, E])."""
    ln1, wq, wk, wv, wo, ln2, wg, w1s, w3s, w2s = w
    B, T, _ = x.shape
    D = cos.shape[-1]
    h = rms_norm(x, ln1, eps)
    q = (h @ wq.t()).view(B, T, H, D).transpose(1, 2)
    k = (h @ wk.t()).view(B, T, KV, D).transpose(1, 2)
    v = (h @ wv.t()).view(B, T, KV, D).transpose(1, 2)
    q, k = _apply_rope(q, cos, sin), _apply_rope(k, cos, sin)
    if gqa:
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    else:
        o = F.scaled_dot_product_attention(q, k.repeat_interleave(H // KV, dim=1),
                                           v.repeat_interleave(H // KV, dim=1), is_causal=True)
    x = x + o.transpose(1, 2).reshape(B, T, H * D) @ wo.t()
    h = rms_norm(x, ln2, eps).reshape(B * T, -1)
    logits = h @ wg.t()
    probs = torch.softmax(logits, dim=-1)
    idx = torch.topk(probs.detach(), K, dim=-1).indices
    gate = torch.gather(probs, 1, idx)
    if norm_topk:
        gate = gate / gate.sum(-1, keepdim=True)
    mask = F.one_hot(idx, E).permute(2, 1, 0)  # [E, K, tokens]
    y = torch.zeros_like(h)
    for e in range(E):
        slot, tok = torch.where(mask[e])
        xe = h[tok]
        out = (F.silu(xe @ w1s[e].t()) * (xe @ w3s[e].t())) @ w2s[e].t()
        y = y.index_add(0, tok, gate[tok, slot, None] * out)
    return x + y.view(B, T, -1), logits


def head_loss(x, norm_w, head, targets, routers, eps, top_k):
    """Final norm, tied head, cross-entropy, plus the Switch/Mixtral load-balancing term (0.01 *
    E * sum f_e P_e per MoE layer), as moeforge adds it."""
    x = rms_norm(x, norm_w, eps)
    logits = x @ head.t()
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    for r in routers:
        p = torch.softmax(r, dim=-1)
        idx = torch.topk(p, top_k, dim=-1).indices
        f = F.one_hot(idx, r.shape[-1]).float().sum(1).mean(0)
        loss = loss + 0.01 * r.shape[-1] * (f * p.mean(0)).sum()
    return loss


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def check_modern_config(cfg):
    """The configs the sdpa variants cover: Mixtral, softmax top-k, every layer MoE, no capacity,
    no shared expert, no window, no biases, tied head."""
    ok = (cfg.model_type == "mixtral" and cfg.policy == "softmax_topk" and cfg.capacity_factor == 0
          and cfg.eval_capacity_factor == 0 and not cfg.shared_intermediate_size and not cfg.sliding_window
          and not cfg.qkv_bias and not cfg.o_bias and cfg.tie and not cfg.selection_bias and not cfg.layer_experts
          and all(cfg.layer_is_moe(i) for i in range(cfg.num_layers)))
    if not ok:
        raise ValueError("the sdpa variants cover only the plain Mixtral configs of this benchmark")


def make_loss(cfg, variant, gqa):
    """loss(params, ids, targets): cross-entropy plus the load-balancing term. eager: through
    torch_ref.model.forward. The sdpa variants: decoder_layer per layer, then head_loss; under
    sdpa-compile both are compiled (regional compilation: one graph serves all the layers, with
    dynamo told to trace torch.where's data-dependent sizes, so a layer is one graph, experts
    included)."""
    _, M = _torch_ref()
    if variant == "eager":
        def loss_fn(sd, ids, targets):
            logits, routers = M.forward.__wrapped__(cfg, sd, ids)
            return head_loss_of_logits(logits, targets, routers, cfg.top_k)
        return loss_fn
    check_modern_config(cfg)
    layer_fn, loss_tail = decoder_layer, head_loss
    if variant == "sdpa-compile":
        torch._dynamo.config.capture_dynamic_output_shape_ops = True  # torch.where in the expert loop
        layer_fn, loss_tail = torch.compile(decoder_layer, fullgraph=True), torch.compile(head_loss, fullgraph=True)
    names = ("input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
             "post_attention_layernorm", "block_sparse_moe.gate")

    def loss_fn(sd, ids, targets):
        B, T = ids.shape
        cos, sin = _rope_tables(T, cfg.head_dim, cfg.rope_theta)
        x = sd["model.embed_tokens.weight"][ids]
        routers = []
        for layer in range(cfg.num_layers):
            p = f"model.layers.{layer}."
            ex = [[sd[f"{p}block_sparse_moe.experts.{e}.{n}.weight"] for e in range(cfg.num_experts)]
                  for n in ("w1", "w3", "w2")]
            w = [sd[p + n + ".weight"] for n in names] + ex
            x, r = layer_fn(x, cos, sin, w, cfg.num_heads, cfg.num_kv_heads, cfg.num_experts, cfg.top_k, cfg.eps,
                            cfg.norm_topk, gqa)
            routers.append(r)
        return loss_tail(x, sd["model.norm.weight"], sd["model.embed_tokens.weight"], targets, routers, cfg.eps,
                         cfg.top_k)
    return loss_fn


def head_loss_of_logits(logits, targets, routers, top_k):
    """The eager variant's loss, as this driver has always computed it."""
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    for r in routers:  # Switch/Mixtral load balancing, as moeforge adds it
        p = torch.softmax(r, dim=-1)
        idx = torch.topk(p, top_k, dim=-1).indices
        f = F.one_hot(idx, r.shape[-1]).float().sum(1).mean(0)
        loss = loss + 0.01 * r.shape[-1] * (f * p.mean(0)).sum()
    return loss


def sdpa_has_gqa():
    """Whether this torch's SDPA takes enable_gqa (2.5+): it then reads the shared k/v heads
    without repeating them."""
    q, k = torch.zeros(1, 2, 2, 4), torch.zeros(1, 1, 2, 4)
    try:
        F.scaled_dot_product_attention(q, k, k, is_causal=True, enable_gqa=True)
        return True
    except (TypeError, RuntimeError):
        return False


def reset_peak_rss():
    """Resets VmHWM to the current RSS (Linux clear_refs 5); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def bench_torch(name, steps, threads, variant):
    torch_ref, _ = _torch_ref()
    torch.set_num_threads(threads)
    # moeforge's trainer flushes subnormal floats (FTZ+DAZ), so the peers do too. Without it the
    # pretrain-bpe-moe peers spent 25 s of a 26 s step in the two head-gradient GEMMs: the
    # reference weights' wide embeddings give logits far apart, so the softmax gradient holds
    # subnormals, and MKL's GEMM slows ~100x on them.
    flush_denormal = torch.set_flush_denormal(True)
    d, batch, seq, router_only = CONFIGS[name]
    cfg = torch_ref.Config(d)
    sd = torch_ref.random_state_dict(cfg, seed=1, std=0.02)
    params = {k: v.requires_grad_(not frozen(k, router_only, name in FROZEN_NORMS)) for k, v in sd.items()}
    trainable = [v for v in params.values() if v.requires_grad]
    caps = capabilities()
    if caps["why_not"][variant]:
        return {"bench": "training_peer_skipped", "torch": torch.__version__, "config": name, "variant": variant,
                "reason": caps["why_not"][variant]}
    if variant == "eager":
        opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0)
        opt_kind = "for-loop (default)"
    elif variant == "sdpa" or not caps["fused_adamw_cpu"]:
        opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0, foreach=True)
        opt_kind = "foreach"
    else:
        opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0, fused=True)
        opt_kind = "fused"
    gqa = variant != "eager" and sdpa_has_gqa()
    loss_fn = make_loss(cfg, variant, gqa)
    compiled = variant == "sdpa-compile"
    warmup = WARMUP.get(variant, 1)
    g = torch.Generator().manual_seed(5)
    rates, cpu_rates = [], []  # tokens per wall second, per CPU second of the process (all threads)
    warm_t0 = time.perf_counter()
    warmup_s, warmup_peak = None, None
    for s in range(steps + warmup):
        if s == warmup:
            warmup_s = time.perf_counter() - warm_t0
            warmup_peak = peak_rss_mib()
            if not reset_peak_rss():
                warmup_peak = None
        ids = torch.randint(0, cfg.vocab_size, (batch, seq), generator=g)
        targets = torch.randint(0, cfg.vocab_size, (batch, seq), generator=g)
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        try:
            loss = loss_fn(params, ids, targets)
            loss.backward()  # (inductor may compile the backward graph here)
        except Exception as e:  # noqa: BLE001 - a compiler error ends this peer, not the benchmark
            if not compiled:
                raise
            return {"bench": "training_peer_failed", "torch": torch.__version__, "config": name, "variant": variant,
                    "step": s, "error": f"{type(e).__name__}: {e}"[:2000]}
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        if s >= warmup:
            rates.append(batch * seq / (time.perf_counter() - t0))
            cpu_rates.append(batch * seq / (time.process_time() - c0))
    peak = peak_rss_mib()
    out = {"bench": "training", "impl": "pytorch", "variant": variant, "torch": torch.__version__, "config": name,
           "attention": "masked softmax" if variant == "eager" else
           "sdpa is_causal" + (" enable_gqa" if gqa else " (k/v repeated)"),
           "adamw": opt_kind, "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "auto"),
           "torch_num_threads": torch.get_num_threads(), "flush_denormal": flush_denormal, "router_only": router_only, "batch": batch, "seq": seq,
           "threads": threads, "steps": steps, "warmup_steps": warmup, "warmup_s": round(warmup_s, 2),
           "trainable_params": sum(v.numel() for v in trainable), "final_loss": round(float(loss.detach()), 5),
           "tokens_per_s": round(statistics.median(rates), 1),
           "tokens_per_cpu_s": round(statistics.median(cpu_rates), 1),
           "peak_rss_mb": round(max(peak, warmup_peak or 0), 1)}  # the whole process, as moeforge's
    if warmup_peak is not None:
        out["peak_rss_timed_mb"] = round(peak, 1)  # over the timed steps alone (VmHWM reset after warm-up)
    if compiled:
        out["compile"] = compile_report()
    return out


def compile_report():
    """What dynamo did: graphs compiled (the layer's, one more where the first layer's input
    needs no gradient, and the head's), graph breaks with reasons. Both regions are compiled with
    fullgraph=True, so a break would have failed the run; `fell_back` says whether any part ran
    without a compiled graph."""
    from torch._dynamo.utils import counters
    breaks = dict(counters.get("graph_break", {}))
    graphs = dict(counters.get("stats", {})).get("unique_graphs", 0)
    return {"backend": "inductor", "regions": ["decoder_layer", "head_loss"], "unique_graphs": graphs,
            "graph_breaks": sum(breaks.values()),
            "graph_break_reasons": {k[:160]: v for k, v in list(breaks.items())[:8]},
            "fell_back": bool(breaks) or graphs < 2}


def check_math(variants):
    """Loss and gradients of each variant against eager's, on the shakespeare config at 2 x 64,
    and on the smollm2 and pretrain-bpe-moe configs at 1 x 32 with 2 layers (router-only, so the frozen sets are
    checked too)."""
    torch_ref, _ = _torch_ref()
    torch.set_num_threads(1)
    out = []
    for name, batch, seq, layers in (("shakespeare", 2, 64, None), ("smollm2-moe", 1, 32, 2),
                                     ("smollm2-moe-top1", 1, 32, 2), ("pretrain-bpe-moe", 1, 32, 2)):
        d, _, _, router_only = CONFIGS[name]
        if layers:
            d = {**d, "num_hidden_layers": layers}
        cfg = torch_ref.Config(d)
        g = torch.Generator().manual_seed(7)
        ids = torch.randint(0, cfg.vocab_size, (batch, seq), generator=g)
        targets = torch.randint(0, cfg.vocab_size, (batch, seq), generator=g)

        def run(variant):
            sd = torch_ref.random_state_dict(cfg, seed=1, std=0.02)
            params = {k: v.requires_grad_(not frozen(k, router_only, name in FROZEN_NORMS)) for k, v in sd.items()}
            fn = make_loss(cfg, variant, variant != "eager" and sdpa_has_gqa())
            loss = fn(params, ids, targets)
            loss.backward()
            return float(loss.detach()), {k: v.grad for k, v in params.items() if v.requires_grad}

        ref_loss, ref_grads = run("eager")
        for v in variants:
            if v == "eager":
                continue
            try:
                loss, grads = run(v)
            except Exception as e:  # noqa: BLE001
                out.append({"bench": "training_math_check", "config": name, "variant": v,
                            "error": f"{type(e).__name__}: {e}"[:1000]})
                continue
            diff = max(float((grads[k] - ref_grads[k]).abs().max() / (ref_grads[k].abs().max() + 1e-12))
                       for k in ref_grads)
            out.append({"bench": "training_math_check", "torch": torch.__version__, "config": name, "variant": v,
                        "loss": loss, "eager_loss": ref_loss, "loss_rel_diff": abs(loss - ref_loss) / abs(ref_loss),
                        "max_grad_rel_diff": diff, "same_trainable": sorted(grads) == sorted(ref_grads),
                        "ok": abs(loss - ref_loss) / abs(ref_loss) < 1e-5 and diff < 1e-3})
    return out


# --- the driver -------------------------------------------------------------------------------

def loadavg_1m():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def run_child(cmd, env=None):
    """Runs cmd; returns (returncode, stdout, stderr, wall s, CPU s of the child and its children)."""
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc.returncode, proc.stdout, proc.stderr, wall, cpu


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


def emit(obj):
    print(json.dumps(obj), flush=True)


def median(xs):
    return round(statistics.median(xs), 1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="all", choices=["all"] + list(CONFIGS))
    p.add_argument("--steps", type=int, default=3, help="timed steps per run (after the warm-up)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--peers", default="eager", help="comma-separated variants: " + ", ".join(VARIANTS))
    p.add_argument("--bin", default=os.path.join(HERE, "..", "build", "release", "bench", "bench_training"))
    p.add_argument("--python", default=sys.executable,
                   help="the peers' interpreters, comma-separated (e.g. a venv with a PyPI torch, /usr/bin/python3)")
    p.add_argument("--allow-reference-blas", action="store_true", help="measure a peer on the netlib reference BLAS")
    p.add_argument("--check-math", action="store_true", help="first compare each variant's loss and gradients "
                   "with eager's on a small batch")
    args = p.parse_args()
    variants = [v.strip() for v in args.peers.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            p.error(f"unknown peer variant {v!r}; known: {', '.join(VARIANTS)}")
    env = torch_env()
    peers = []  # (label, python, variant, blas info)
    for py in [os.path.expanduser(x.strip()) for x in args.python.split(",") if x.strip()]:
        blas = probe_torch_blas(py, args.threads)
        blas["allowed_reference_blas"] = args.allow_reference_blas
        emit({"bench": "training_peer_blas", "python": py, **blas})
        require_tuned_blas(blas, args.allow_reference_blas)
        caps = json.loads(subprocess.run([py, __file__, "--torch-capabilities"], check=True, capture_output=True,
                                         text=True, env=env).stdout.strip().splitlines()[-1])
        tag = "torch-" + caps["torch"].split("+")[0]
        if any(peer[0].startswith(tag + ":") for peer in peers):  # two interpreters with the same torch
            tag += f"({py})"
        for v in variants:
            if caps["why_not"][v]:
                emit({"bench": "training_peer_skipped", "peer": f"{tag}:{v}", "python": py,
                      "reason": caps["why_not"][v]})
            else:
                peers.append((f"{tag}:{v}", py, v, blas))
        if args.check_math:
            runnable = [v for v in variants if not caps["why_not"][v] and v != "eager"]
            if runnable:
                rc, out, err, _, _ = run_child([py, __file__, "--torch-check-math", ",".join(runnable)], env)
                for line in out.strip().splitlines():
                    print(line, flush=True)
                if rc:
                    emit({"bench": "training_math_check", "python": py, "error": err[-2000:]})
    configs = list(CONFIGS) if args.config == "all" else [args.config]
    engines = ["moeforge"] + [peer[0] for peer in peers]
    by_label = {peer[0]: peer for peer in peers}
    failed = set()
    results = {}  # (config, engine) -> list of run lines
    for r in range(args.rounds):
        order = engines[r % len(engines):] + engines[:r % len(engines)]
        for name in configs:
            _, batch, seq, _ = CONFIGS[name]
            for engine in order:
                if (name, engine) in failed:
                    continue
                load = loadavg_1m()
                if engine == "moeforge":
                    cmd = [args.bin, "--config", name, "--batch", str(batch), "--seq", str(seq),
                           "--steps", str(args.steps), "--threads", str(args.threads)]
                    rc, out, err, wall, cpu = run_child(cmd)
                    extra = {}
                else:
                    _, py, variant, blas = by_label[engine]
                    cmd = [py, __file__, "--torch-only", name, str(args.steps), str(args.threads), variant]
                    rc, out, err, wall, cpu = run_child(cmd, env)
                    extra = {"blas_kind": blas["blas_kind"], "torch_mkl": blas["torch_mkl"],
                             "sgemm_gflops_probe": blas["sgemm_gflops"]}
                line = last_json(out) if rc == 0 else None
                if line is None or line.get("bench") != "training":
                    failed.add((name, engine))
                    emit({**(line or {"bench": "training_peer_failed", "error": err[-2000:], "rc": rc}),
                          "engine": engine, "config": name, "round": r + 1})
                    if engine == "moeforge":
                        sys.exit(f"{' '.join(cmd)} failed")
                    continue
                line.update({"engine": engine, "round": r + 1, "loadavg_1m_before": load,
                             "process_wall_s": round(wall, 2), "process_cpu_s": round(cpu, 2), **extra})
                emit(line)
                results.setdefault((name, engine), []).append(line)
    for name in configs:
        ours = results.get((name, "moeforge"), [])
        o_tps = median([x["tokens_per_s"] for x in ours])
        o_cpu = median([x["tokens_per_cpu_s"] for x in ours])
        o_rss = median([x["peak_rss_mb"] for x in ours])
        for label, _, variant, _ in peers:
            runs = results.get((name, label), [])
            if not runs:
                continue
            tps = median([x["tokens_per_s"] for x in runs])
            cps = median([x["tokens_per_cpu_s"] for x in runs])
            rss = median([x["peak_rss_mb"] for x in runs])
            emit({"bench": "training_summary", "config": name, "peer": label, "rounds": len(runs),
                  "moeforge_tokens_per_s": o_tps, "peer_tokens_per_s": tps,
                  "speedup_vs_peer": round(o_tps / tps, 2),
                  "moeforge_tokens_per_cpu_s": o_cpu, "peer_tokens_per_cpu_s": cps,
                  "cpu_efficiency_vs_peer": round(o_cpu / cps, 2),
                  "moeforge_peak_rss_mb": o_rss, "peer_peak_rss_mb": rss, "rss_ratio_vs_peer": round(o_rss / rss, 3),
                  "peer_tokens_per_s_runs": [x["tokens_per_s"] for x in runs],
                  "moeforge_tokens_per_s_runs": [x["tokens_per_s"] for x in ours],
                  "loadavg_1m_before": [x["loadavg_1m_before"] for x in runs]})


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "--torch-only":
        print(json.dumps(bench_torch(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                                     sys.argv[5] if len(sys.argv) > 5 else "eager")))
    elif len(sys.argv) == 2 and sys.argv[1] == "--torch-capabilities":
        print(json.dumps(capabilities()))
    elif len(sys.argv) == 3 and sys.argv[1] == "--torch-check-math":
        for line in check_math(sys.argv[2].split(",")):
            print(json.dumps(line), flush=True)
    else:
        main()
