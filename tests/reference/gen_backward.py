#!/usr/bin/env python3
"""Fixtures for tests/reference/test_backward.cpp: random inputs, output gradients and the input
and parameter gradients PyTorch autograd computes in float64 from the same fp32 values, for
every CPU backward kernel. Same manifest format as gen_kernels.py (<out>/manifest.json plus one
raw little-endian file per array)."""
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
rng = np.random.default_rng(4321)
cases = manifest.cases
save = manifest.save


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def leaf(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64)).requires_grad_(True)


def f32(t):
    return t.detach().numpy().astype(np.float32)


# ---------------------------------------------------------------- rmsnorm
for rows, dim in ((5, 100), (40, 576)):
    case = {"name": f"rmsnorm_{rows}x{dim}", "op": "rmsnorm", "rows": rows, "dim": dim, "eps": 1e-5}
    x, w, dy = randn(rows, dim, scale=2.0), randn(dim), randn(rows, dim)
    xt, wt = leaf(x), leaf(w)
    y = xt * torch.rsqrt(xt.pow(2).mean(-1, keepdim=True) + 1e-5) * wt
    y.backward(torch.from_numpy(dy.astype(np.float64)))
    for name, arr in (("x", x), ("weight", w), ("dy", dy), ("dx", f32(xt.grad)), ("dweight", f32(wt.grad))):
        save(case, name, arr)
    cases.append(case)

# ---------------------------------------------------------------- silu_mul
for n in (1000, 40000):
    case = {"name": f"silu_mul_{n}", "op": "silu_mul", "n": n}
    g, u, d = randn(n, scale=4.0), randn(n), randn(n)
    gt, ut = leaf(g), leaf(u)
    (torch.nn.functional.silu(gt) * ut).backward(torch.from_numpy(d.astype(np.float64)))
    for name, arr in (("gate", g), ("up", u), ("dout", d), ("dgate", f32(gt.grad)), ("dup", f32(ut.grad))):
        save(case, name, arr)
    cases.append(case)

# ---------------------------------------------------------------- rope (HF rotate_half)
for theta, head_dim, positions in ((10000.0, 64, [0, 5, 6, 300]), (500000.0, 32, [1, 2, 1500])):
    heads = 3
    case = {"name": f"rope_theta{int(theta)}_d{head_dim}", "op": "rope", "theta": theta, "head_dim": head_dim,
            "heads": heads, "max_positions": 2048}
    x, dy = randn(len(positions), heads, head_dim), randn(len(positions), heads, head_dim)
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    ang = torch.tensor(positions, dtype=torch.float32)[:, None] * inv_freq[None, :]
    emb = torch.cat((ang, ang), dim=-1).double()
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
    xt = leaf(x)
    half = head_dim // 2
    y = xt * cos + torch.cat((-xt[..., half:], xt[..., :half]), dim=-1) * sin
    y.backward(torch.from_numpy(dy.astype(np.float64)))
    save(case, "positions", np.array(positions, dtype=np.int32))
    save(case, "dy", dy)
    save(case, "dx", f32(xt.grad))
    cases.append(case)

# ---------------------------------------------------------------- cross-entropy with masked rows
for rows, vocab, scale in ((7, 1000, 3.0), (64, 5000, 8.0)):
    case = {"name": f"xent_{rows}x{vocab}", "op": "xent", "rows": rows, "vocab": vocab}
    z = randn(rows, vocab, scale=scale)
    t = rng.integers(0, vocab, size=rows).astype(np.int32)
    t[1] = -1
    t[rows - 2] = -1
    count = int((t >= 0).sum())
    zt = leaf(z)
    loss = torch.nn.functional.cross_entropy(zt, torch.from_numpy(t.astype(np.int64)), ignore_index=-1,
                                             reduction="sum")
    (loss / count).backward()
    case.update({"loss_sum": float(loss), "counted": count, "grad_scale": 1.0 / count})
    save(case, "logits", z)
    save(case, "targets", t)
    save(case, "dlogits", f32(zt.grad))
    cases.append(case)


# ---------------------------------------------------------------- linear: input and weight gradients
def stored_weight(dtype, w):
    if dtype == "F32":
        return w.view(np.uint8), w
    raw = quants.quantize(w, getattr(QT, dtype))
    return raw.view(np.uint8), quants.dequantize(raw, getattr(QT, dtype)).astype(np.float32)


for dtype in ("F32", "F16", "Q8_0", "Q4_1"):
    for M, N, K in ((3, 200, 576), (64, 37, 96)):
        case = {"name": f"linear_dx_{dtype}_M{M}_N{N}_K{K}", "op": "linear_dx", "dtype": dtype, "M": M, "N": N, "K": K}
        w = randn(N, K, scale=0.05)
        raw, wdq = stored_weight(dtype, w) if dtype != "F16" else (w.astype(np.float16).view(np.uint8),
                                                                    w.astype(np.float16).astype(np.float32))
        x, dy, dx0 = randn(M, K), randn(M, N), randn(M, K)
        xt = leaf(x)
        (xt @ torch.from_numpy(wdq.astype(np.float64)).T).backward(torch.from_numpy(dy.astype(np.float64)))
        save(case, "w", raw)
        save(case, "dy", dy)
        save(case, "dx0", dx0)
        save(case, "dx", f32(xt.grad))
        save(case, "dx_acc", (xt.grad.numpy() + dx0.astype(np.float64)).astype(np.float32))
        cases.append(case)

for M, N, K in ((37, 50, 64), (300, 96, 128)):
    case = {"name": f"linear_dw_M{M}_N{N}_K{K}", "op": "linear_dw", "M": M, "N": N, "K": K}
    x, dy, w, b = randn(M, K), randn(M, N), randn(N, K, scale=0.1), randn(N)
    dw0, db0 = randn(N, K), randn(N)
    wt, bt = leaf(w), leaf(b)
    (torch.from_numpy(x.astype(np.float64)) @ wt.T + bt).backward(torch.from_numpy(dy.astype(np.float64)))
    for name, arr in (("x", x), ("dy", dy), ("dw0", dw0), ("db0", db0),
                      ("dw", (wt.grad.numpy() + dw0).astype(np.float32)),
                      ("db", (bt.grad.numpy() + db0).astype(np.float32))):
        save(case, name, arr)
    cases.append(case)

# ---------------------------------------------------------------- attention (causal GQA)
for T, S in ((6, 6), (5, 9), (40, 40), (150, 170)):  # the last spans several causal blocks of the CPU backward
    H, KV, D = 6, 2, 16
    kv_stride = KV * D + 8
    case = {"name": f"attention_T{T}_S{S}", "op": "attention", "T": T, "S": S, "n_heads": H, "n_kv_heads": KV,
            "head_dim": D, "kv_stride": kv_stride}
    q, kc, vc, do = randn(T, H, D), randn(S, kv_stride), randn(S, kv_stride), randn(T, H, D)
    qt, kt, vt = leaf(q), leaf(kc), leaf(vc)
    k = kt[:, :KV * D].reshape(S, KV, D).repeat_interleave(H // KV, dim=1).transpose(0, 1)
    v = vt[:, :KV * D].reshape(S, KV, D).repeat_interleave(H // KV, dim=1).transpose(0, 1)
    scores = qt.transpose(0, 1) @ k.transpose(1, 2) / np.sqrt(D)
    past = S - T
    scores = scores.masked_fill(torch.arange(S)[None, :] > (past + torch.arange(T))[:, None], float("-inf"))
    y = (torch.softmax(scores, dim=-1) @ v).transpose(0, 1)
    y.backward(torch.from_numpy(do.astype(np.float64)))
    for name, arr in (("q", q), ("k", kc), ("v", vc), ("dout", do), ("dq", f32(qt.grad)),
                      ("dk", f32(kt.grad)), ("dv", f32(vt.grad))):
        save(case, name, arr)
    cases.append(case)


# ---------------------------------------------------------------- router, aux losses, MoE layer
def route(logits, k, renorm):
    p = torch.softmax(logits, dim=-1)
    idx = torch.sort(p.detach(), dim=-1, descending=True, stable=True).indices[:, :k]
    w = torch.gather(p, 1, idx)
    if renorm:
        w = w / w.sum(-1, keepdim=True)
    return p, idx, w


for T, E, k, renorm in ((9, 8, 2, True), (12, 6, 3, False)):
    case = {"name": f"router_T{T}_E{E}_k{k}_r{int(renorm)}", "op": "router", "T": T, "E": E, "k": k,
            "renormalize": renorm}
    z = randn(T, E, scale=1.5)
    dw = randn(T, k)
    zt = leaf(z)
    _, idx, w = route(zt, k, renorm)
    w.backward(torch.from_numpy(dw.astype(np.float64)))
    save(case, "logits", z)
    save(case, "idx", idx.numpy().astype(np.int32))
    save(case, "dweight", dw)
    save(case, "dlogits", f32(zt.grad))
    cases.append(case)

for T, E, k in ((10, 8, 2), (33, 4, 1)):
    case = {"name": f"aux_T{T}_E{E}_k{k}", "op": "aux", "T": T, "E": E, "k": k, "lb_coef": 0.01, "z_coef": 0.001}
    z = randn(T, E, scale=2.0)
    mask = (rng.random(T) > 0.3).astype(np.uint8)
    mask[0] = 1
    zt = leaf(z)
    p, idx, _ = route(zt, k, True)
    m = torch.from_numpy(mask.astype(bool))
    rows = int(mask.sum())
    onehot = torch.nn.functional.one_hot(idx, E).double().sum(1)          # [T, E]: slots routed to e
    f = onehot[m].sum(0) / rows
    P = p[m].sum(0) / rows
    lb = E * (f * P).sum()
    zl = (torch.logsumexp(zt[m], dim=-1) ** 2).mean()
    (0.01 * lb + 0.001 * zl).backward()
    case.update({"lb": float(lb), "z": float(zl)})
    save(case, "logits", z)
    save(case, "idx", idx.numpy().astype(np.int32))
    save(case, "mask", mask)
    save(case, "dlogits", f32(zt.grad))
    cases.append(case)

# A whole sparse MoE FFN (router + top-k + SwiGLU experts + gated combine), as model code will
# chain the kernels: gradients of x, the router weight and every expert weight.
T, E, k, H, I = 11, 4, 2, 24, 40
case = {"name": "moe_layer", "op": "moe_layer", "T": T, "E": E, "k": k, "H": H, "I": I}
x, wr, dy = randn(T, H), randn(E, H, scale=0.3), randn(T, H)
wg, wu, wd = randn(E, I, H, scale=0.2), randn(E, I, H, scale=0.2), randn(E, H, I, scale=0.2)
xt, wrt, wgt, wut, wdt = leaf(x), leaf(wr), leaf(wg), leaf(wu), leaf(wd)
logits = xt @ wrt.T
_, idx, w = route(logits, k, True)
y = torch.zeros(T, H, dtype=torch.float64)
for t in range(T):
    for j in range(k):
        e = int(idx[t, j])
        h = torch.nn.functional.silu(xt[t] @ wgt[e].T) * (xt[t] @ wut[e].T)
        y[t] = y[t] + w[t, j] * (h @ wdt[e].T)
y.backward(torch.from_numpy(dy.astype(np.float64)))
for name, arr in (("x", x), ("w_router", wr), ("w_gate", wg), ("w_up", wu), ("w_down", wd), ("dy", dy),
                  ("idx", idx.numpy().astype(np.int32)), ("dx", f32(xt.grad)), ("dw_router", f32(wrt.grad)),
                  ("dw_gate", f32(wgt.grad)), ("dw_up", f32(wut.grad)), ("dw_down", f32(wdt.grad))):
    save(case, name, arr)
cases.append(case)

# ---------------------------------------------------------------- embedding (repeated ids)
case = {"name": "embedding", "op": "embedding", "vocab": 50, "H": 12, "n": 20}
ids = rng.integers(0, 50, size=20).astype(np.int32)
ids[3] = ids[7] = ids[11] = 5
dx = randn(20, 12)
table = np.zeros((50, 12))
for i, t in enumerate(ids):
    table[t] += dx[i].astype(np.float64)
save(case, "ids", ids)
save(case, "dx", dx)
save(case, "dtable", table.astype(np.float32))
cases.append(case)

manifest.write()
print(f"gen_backward: {len(cases)} cases -> {out_dir}")
