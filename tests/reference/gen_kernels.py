#!/usr/bin/env python3
"""Fixtures for tests/reference/test_kernels.cpp: random inputs and PyTorch outputs for every
CPU kernel. Writes <out>/manifest.json (one entry per case: op, parameters, arrays) and one raw
little-endian file per array (<case>.<name>.bin). Outputs are computed in float64 from the
same fp32 inputs and stored as fp32, so the C++ side is judged against a sharper reference."""
import os
import sys

import numpy as np
import torch
from gguf import GGMLQuantizationType as QT
from gguf import quants

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from manifest_writer import Manifest  # noqa: E402

out_dir = sys.argv[1]
manifest = Manifest(out_dir)
rng = np.random.default_rng(1234)
cases = manifest.cases
save = manifest.save


def f64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ---------------------------------------------------------------- linear
def random_kquant_bytes(qtype, n_rows, k):
    """Random K-quant super-blocks with sane fp16 scale fields (no NaN/inf)."""
    block_elems, block_bytes = quants.GGML_QUANT_SIZES[qtype]
    nb = k // block_elems
    raw = rng.integers(0, 256, size=(n_rows, nb, block_bytes), dtype=np.uint8)
    def put_f16(offset, lo, hi):
        vals = rng.uniform(lo, hi, size=(n_rows, nb)).astype(np.float16)
        raw[:, :, offset:offset + 2] = vals.view(np.uint8).reshape(n_rows, nb, 2)
    if qtype == QT.Q4_K or qtype == QT.Q5_K:
        put_f16(0, 0.001, 0.01)   # d
        put_f16(2, 0.001, 0.01)   # dmin
    elif qtype == QT.Q6_K:
        put_f16(block_bytes - 2, 0.001, 0.01)  # d is the last field
    else:
        raise ValueError(qtype)
    return raw.reshape(n_rows, nb * block_bytes)


def weight_bytes(dtype, w):
    """(stored bytes, dequantized fp32 weights) for an fp32 matrix w [N, K]."""
    if dtype == "F32":
        return w.view(np.uint8), w
    if dtype == "F16":
        h = w.astype(np.float16)
        return h.view(np.uint8), h.astype(np.float32)
    if dtype in ("Q4_K", "Q6_K"):
        qt = getattr(QT, dtype)
        raw = random_kquant_bytes(qt, w.shape[0], w.shape[1])
        return raw, quants.dequantize(raw, qt).astype(np.float32)
    qt = getattr(QT, dtype)  # BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1
    raw = quants.quantize(w, qt)
    return raw.view(np.uint8), quants.dequantize(raw, qt).astype(np.float32)


def linear_case(dtype, M, K, N, bias, tag=""):
    case = {"name": f"linear_{dtype}_M{M}_K{K}_N{N}{tag}", "op": "linear", "dtype": dtype,
            "M": M, "K": K, "N": N, "bias": bias}
    x = randn(M, K)
    w = randn(N, K, scale=0.05)
    raw, wdq = weight_bytes(dtype, w)
    y = f64(x) @ f64(wdq).T
    save(case, "x", x)
    save(case, "w", raw)
    if bias:
        b = randn(N)
        save(case, "bias", b)
        y = y + f64(b)
    save(case, "y", y.numpy().astype(np.float32))
    cases.append(case)


for dtype in ["F32", "F16", "BF16"]:
    for M in (1, 3, 64):
        linear_case(dtype, M, 100, 37, bias=(M == 3))   # K not a multiple of 16/32
        linear_case(dtype, M, 576, 200, bias=False)     # parallel path, SmolLM2 width
for dtype in ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"]:
    for M in (1, 3, 64):
        linear_case(dtype, M, 96, 37, bias=(M == 3))    # 3 blocks: not a multiple of 64
        linear_case(dtype, M, 576, 200, bias=False)
for dtype in ["Q4_K", "Q6_K"]:
    for M in (1, 3, 64):
        linear_case(dtype, M, 512, 19, bias=(M == 3))
for M in (2, 4, 5, 6, 7, 8, 9):                          # every GEMV row count + first GEMM one
    linear_case("Q4_1", M, 160, 33, bias=False, tag="_rows")
    linear_case("F16", M, 48, 33, bias=False, tag="_rows")

# ---------------------------------------------------------------- linear, int8 decode path
def quantize_activations_q8(x):
    """As PackedQuantMatrix: per block of 32, d = amax/127, q = rint(x * (1/d)) (half to even), all fp32."""
    xb = x.reshape(x.shape[0], -1, 32).astype(np.float32)
    amax = np.abs(xb).max(axis=-1, keepdims=True)
    d = (amax / np.float32(127.0)).astype(np.float32)
    inv = np.where(d > 0, np.float32(1.0) / np.where(d > 0, d, np.float32(1.0)), np.float32(0.0)).astype(np.float32)
    q = np.rint((xb * inv).astype(np.float32)).astype(np.int64)
    return q, d[..., 0].astype(np.float64)


def int8_reference(dtype, raw, x, N, K):
    """y[M, N] in float64 from the stored blocks and the int8-quantized activations."""
    q, s = quantize_activations_q8(x)                  # [M, nb, 32], [M, nb]
    nb = K // 32
    size = {"Q4_0": 18, "Q4_1": 20, "Q8_0": 34}[dtype]
    blocks = raw.reshape(N, nb, size)
    d = blocks[:, :, 0:2].copy().view(np.float16)[..., 0].astype(np.float64)   # [N, nb]
    if dtype == "Q8_0":
        w = blocks[:, :, 2:].copy().view(np.int8).astype(np.int64)             # [N, nb, 32]
    else:
        qs = blocks[:, :, 4:] if dtype == "Q4_1" else blocks[:, :, 2:]
        w = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.int64)    # element j, j+16
        if dtype == "Q4_0":
            w = w - 8
    dots = np.einsum("mbi,nbi->mnb", q, w).astype(np.float64)                  # exact integers
    y = (dots * d[None, :, :] * s[:, None, :]).sum(-1)
    if dtype == "Q4_1":
        m = blocks[:, :, 2:4].copy().view(np.float16)[..., 0].astype(np.float64)
        y = y + np.einsum("nb,mb->mn", m, s * q.sum(-1))  # the minimum meets the quantized sum
    return y


for dtype in ["Q4_0", "Q4_1", "Q8_0"]:
    for M, K, N in ((1, 576, 37), (3, 96, 16), (8, 1536, 50)):
        case = {"name": f"linear_int8_{dtype}_M{M}_K{K}_N{N}", "op": "linear_int8", "dtype": dtype,
                "M": M, "K": K, "N": N}
        x = randn(M, K)
        x[0, :32] = 0.0                           # an all-zero block: scale 0
        w = randn(N, K, scale=0.05)
        raw = quants.quantize(w, getattr(QT, dtype)).view(np.uint8)
        wdq = quants.dequantize(raw, getattr(QT, dtype)).astype(np.float64)
        save(case, "x", x)
        save(case, "w", raw)
        save(case, "y", int8_reference(dtype, raw, x, N, K).astype(np.float32))
        save(case, "y_exact", (f64(x) @ torch.from_numpy(wdq).T).numpy().astype(np.float32))
        cases.append(case)

# ---------------------------------------------------------------- rmsnorm
for rows, dim in ((5, 100), (64, 576)):
    case = {"name": f"rmsnorm_{rows}x{dim}", "op": "rmsnorm", "rows": rows, "dim": dim,
            "eps": 1e-5}
    x, w = randn(rows, dim, scale=3.0), randn(dim)
    xt = f64(x)
    y = xt * torch.rsqrt(xt.pow(2).mean(-1, keepdim=True) + 1e-5) * f64(w)
    save(case, "x", x)
    save(case, "weight", w)
    save(case, "y", y.numpy().astype(np.float32))
    cases.append(case)

# ---------------------------------------------------------------- rope (HF rotate_half)
def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


for theta, head_dim, positions in ((10000.0, 64, [7, 8, 9, 1000]), (100000.0, 32, [0, 3, 2047])):
    heads, max_pos = 3, 2048
    case = {"name": f"rope_theta{int(theta)}_d{head_dim}", "op": "rope", "theta": theta,
            "head_dim": head_dim, "heads": heads, "max_positions": max_pos}
    x = randn(len(positions), heads, head_dim)
    # As HF's LlamaRotaryEmbedding: fp32 inv_freq and angles, cos/sin of the fp32 angle.
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    pos = torch.tensor(positions, dtype=torch.float32)
    freqs = pos[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1).double()
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
    xt = f64(x)
    y = xt * cos + rotate_half(xt) * sin
    save(case, "x", x)
    save(case, "positions", np.array(positions, dtype=np.int32))
    save(case, "y", y.numpy().astype(np.float32))
    cases.append(case)

# ---------------------------------------------------------------- attention (causal GQA)
# Fewer than 16 queries run one query at a time, 16 keys per score block plus a tail (S = 37,
# 50); head widths 64 and 128 have register kernels, 48 the generic loop. Past 128 keys a query's
# keys are split and the splits' softmax merged (S = 300, 260, 129, 385). From 16 queries on, GEMMs
# run per head and block of 64 queries against the keys that block sees (T = 130, 70: several
# blocks, the last one partial).
for T, S, D in ((1, 1, 64), (1, 10, 64), (5, 12, 64), (20, 20, 64), (17, 40, 64), (1, 37, 64), (3, 50, 128),
                (2, 33, 48), (1, 300, 64), (3, 260, 128), (1, 129, 48), (4, 385, 64), (130, 150, 64),
                (70, 70, 128)):
    n_heads, n_kv = 9, 3
    kv_stride = n_kv * D + 16  # cache rows wider than one position's K (read in place)
    case = {"name": f"attention_T{T}_S{S}_D{D}", "op": "attention", "T": T, "S": S,
            "n_heads": n_heads, "n_kv_heads": n_kv, "head_dim": D, "kv_stride": kv_stride}
    q = randn(T, n_heads, D)
    kc = randn(S, kv_stride)
    vc = randn(S, kv_stride)
    k = f64(kc[:, :n_kv * D].reshape(S, n_kv, D))
    v = f64(vc[:, :n_kv * D].reshape(S, n_kv, D))
    group = n_heads // n_kv
    k = k.repeat_interleave(group, dim=1).transpose(0, 1)  # [H, S, D]
    v = v.repeat_interleave(group, dim=1).transpose(0, 1)
    qh = f64(q).transpose(0, 1)                             # [H, T, D]
    scores = qh @ k.transpose(1, 2) / np.sqrt(D)
    past = S - T
    mask = torch.arange(S)[None, :] > (past + torch.arange(T))[:, None]
    scores = scores.masked_fill(mask, float("-inf"))
    y = (torch.softmax(scores, dim=-1) @ v).transpose(0, 1)  # [T, H, D]
    save(case, "q", q)
    save(case, "k", kc)
    save(case, "v", vc)
    save(case, "y", y.contiguous().numpy().astype(np.float32))
    cases.append(case)

# ---------------------------------------------------------------- silu_mul, softmax
for n in (1000, 40000):
    case = {"name": f"silu_mul_{n}", "op": "silu_mul", "n": n}
    g, u = randn(n, scale=6.0), randn(n)
    y = torch.nn.functional.silu(f64(g)) * f64(u)
    save(case, "gate", g)
    save(case, "up", u)
    save(case, "y", y.numpy().astype(np.float32))
    cases.append(case)

for rows, cols, scale in ((3, 1000, 1.0), (4, 37, 30.0), (8, 5000, 5.0)):
    case = {"name": f"softmax_{rows}x{cols}", "op": "softmax", "rows": rows, "cols": cols}
    x = randn(rows, cols, scale=scale)
    save(case, "x", x)
    save(case, "y", torch.softmax(f64(x), dim=-1).numpy().astype(np.float32))
    cases.append(case)

# ---------------------------------------------------------------- router top-k
def router_case(name, logits, k, renorm):
    T, E = logits.shape
    case = {"name": name, "op": "router", "T": T, "E": E, "k": k, "renormalize": renorm}
    probs = torch.softmax(f64(logits), dim=-1)
    # Ties -> lower index first: a stable descending sort gives exactly that order.
    order = torch.sort(probs, dim=-1, descending=True, stable=True).indices[:, :k]
    w = torch.gather(probs, 1, order)
    if renorm:
        w = w / w.sum(-1, keepdim=True)
    save(case, "logits", logits)
    save(case, "idx", order.numpy().astype(np.int32))
    save(case, "weight", w.numpy().astype(np.float32))
    cases.append(case)


for renorm in (False, True):
    router_case(f"router_T6_E8_k2_renorm{int(renorm)}", randn(6, 8, scale=2.0), 2, renorm)
    router_case(f"router_T5_E70_k3_renorm{int(renorm)}", randn(5, 70, scale=2.0), 3, renorm)
tied = np.array([[1.0, 2.0, 2.0, 0.5], [3.0, 3.0, 3.0, 3.0], [0.0, -1.0, 0.0, -1.0]],
                dtype=np.float32)
router_case("router_ties", tied, 2, True)

# ---------------------------------------------------------------- MoE dispatch
T, E, k, dim, hidden = 7, 4, 2, 40, 24
case = {"name": "moe", "op": "moe", "T": T, "E": E, "k": k, "dim": dim, "hidden": hidden}
x = randn(T, dim)
logits = randn(T, E, scale=2.0)
logits[3] = logits[4]  # two tokens with identical routes
probs = torch.softmax(f64(logits), dim=-1)
idx = torch.sort(probs, dim=-1, descending=True, stable=True).indices[:, :k]
gate = torch.gather(probs, 1, idx)
gate = (gate / gate.sum(-1, keepdim=True)).float().numpy()
idx = idx.numpy().astype(np.int32)
w_experts = randn(E, hidden, dim, scale=0.2)   # expert e: out = x @ W_e^T  ([hidden] != dim would
w_down = randn(E, dim, hidden, scale=0.2)      # break scatter, so a down projection returns to dim)
y0 = randn(T, dim)
y = f64(y0).clone()
for t in range(T):  # the dense loop: every (token, slot) through its expert
    for j in range(k):
        e = idx[t, j]
        h = f64(x[t]) @ f64(w_experts[e]).T
        y[t] += float(gate[t, j]) * (h @ f64(w_down[e]).T)
flat = idx.reshape(-1)
order = np.argsort(flat, kind="stable")
offsets = np.concatenate([[0], np.cumsum(np.bincount(flat, minlength=E))]).astype(np.int64)
for name, arr in (("x", x), ("idx", idx), ("gate", gate), ("w_up", w_experts), ("w_down", w_down),
                  ("y0", y0), ("y", y.numpy().astype(np.float32)), ("offsets", offsets),
                  ("plan_token", (order // k).astype(np.int32)),
                  ("plan_gate", gate.reshape(-1)[order].astype(np.float32))):
    save(case, name, arr)
cases.append(case)

manifest.write()
print(f"gen_kernels: {len(cases)} cases -> {out_dir}")
