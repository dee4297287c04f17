#!/usr/bin/env python3
"""Fixtures for tests/reference/test_backward.cpp: random inputs, output gradients and the input
and parameter gradients PyTorch autograd computes in float64 from the same fp32 values, for
every CPU backward kernel. Same manifest format as gen_kernels.py (<out>/manifest.json plus one
raw little-endian file per array)."""
import json
import os
import sys

import numpy as np
import torch
from gguf import GGMLQuantizationType as QT
from gguf import quants

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
rng = np.random.default_rng(4321)
cases = []


def save(case, name, arr):
    arr = np.ascontiguousarray(arr)
    fname = f"{case['name']}.{name}.bin"
    arr.tofile(os.path.join(out_dir, fname))
    case.setdefault("arrays", {})[name] = {"file": fname, "dtype": str(arr.dtype), "shape": list(arr.shape)}


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

with open(os.path.join(out_dir, "manifest.json"), "w") as f:
    json.dump({"cases": cases}, f, indent=1)
print(f"gen_backward: {len(cases)} cases -> {out_dir}")
