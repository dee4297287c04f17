#!/usr/bin/env python3
"""Fixtures for tests/reference/test_routing.cpp: one MoE FFN (router, routing policy, capacity,
SwiGLU experts, gated combine, optional shared expert, load-balancing and z losses) written
here from the papers' definitions in PyTorch float64, for every routing policy moeforge has.
Each case stores the inputs (fp32), the layer output, and the autograd gradients of
  sum(y * dy) + lb_coef * lb + z_coef * z + domain_coef * domain
with respect to x, the router, the noise projection, every expert and the shared expert."""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from manifest_writer import Manifest  # noqa: E402
from torch_ref import routing as R  # noqa: E402

out_dir = sys.argv[1]
manifest = Manifest(out_dir)
rng = np.random.default_rng(2024)


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def leaf(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64)).requires_grad_(True)


def f32(t):
    return t.detach().numpy().astype(np.float32)


def swiglu(x, g, u, d):
    return (F.silu(x @ g.T) * (x @ u.T)) @ d.T


def domain_routing_loss(z, targets, batch, per_token=False):
    """Router supervision from domain labels: within each sequence, the rows whose target is
    expert e form a segment; the loss is the mean over segments of -log(mean_t softmax(z_t)[e]).
    per_token: the mean over target rows of the cross-entropy -log softmax(z_t)[e]."""
    p = torch.softmax(z, dim=-1)
    if per_token:
        rows = [t for t in range(z.shape[0]) if targets[t] >= 0]
        return -torch.log(p[rows, [targets[t] for t in rows]]).mean()
    n = z.shape[0] // batch
    losses = []
    for s in range(batch):
        for e in sorted(set(int(t) for t in targets[s * n:(s + 1) * n] if t >= 0)):
            rows = [s * n + i for i in range(n) if targets[s * n + i] == e]
            losses.append(-torch.log(p[rows, e].mean()))
    return torch.stack(losses).mean() if losses else torch.zeros((), dtype=torch.float64)


def moe(case, x, wr, wn, experts, shared, bias, eps, counted, batch):
    policy, k, E = case["policy"], case["k"], case["E"]
    T = x.shape[0]
    z = x @ wr.T
    sel = z
    if policy == "noisy_topk" and case["training"]:
        sel = z + eps * F.softplus(x @ wn.T)
    cf = case["capacity_factor"] if case["training"] else case["eval_capacity_factor"]
    cap = R.capacity(policy, cf, case["min_capacity"], T, E, k)
    y, chosen, dropped = R.moe_combine(policy, k, case["renormalize"], cap, z, sel,
                                       lambda e, rows: swiglu(x[rows], *experts[e]), bias)
    if chosen is not None:
        case["dropped"] = dropped
    if shared is not None:
        g, u, d, wg = shared
        out = swiglu(x, g, u, d)
        y = y + (torch.sigmoid(x @ wg.T) * out if wg is not None else out)
    m = torch.from_numpy(counted.astype(bool))
    zl = (torch.logsumexp(z[m], dim=-1) ** 2).mean()
    lb = torch.zeros((), dtype=torch.float64)
    if chosen is not None:
        if case["lb_per_sequence"]:
            n = T // batch
            for s in range(batch):
                lb = lb + R.balance_loss(z[s * n:(s + 1) * n], chosen[s * n:(s + 1) * n],
                                         counted[s * n:(s + 1) * n], E) / batch
        else:
            lb = R.balance_loss(z, chosen, counted, E)
    dom = (domain_routing_loss(z, case["route_targets"], batch, case.get("domain_per_token", False))
           if "route_targets" in case else None)
    return y, lb, zl, dom


def add_case(name, policy, k=2, E=4, T=12, H=16, I=24, renormalize=True, capacity_factor=0.0,
             eval_capacity_factor=-1.0, min_capacity=0, training=True, shared=0, shared_gate=True,
             bias=False, lb_per_sequence=False, batch=1, mask_some=False, domain=False, domain_per_token=False):
    case = {"name": name, "op": "moe_ffn", "policy": policy, "k": k, "E": E, "T": T, "H": H, "I": I,
            "renormalize": renormalize, "capacity_factor": capacity_factor,
            "eval_capacity_factor": eval_capacity_factor if eval_capacity_factor >= 0 else capacity_factor,
            "config_eval_capacity_factor": eval_capacity_factor, "min_capacity": min_capacity,
            "training": training, "shared": shared, "shared_gate": shared_gate, "bias": bias,
            "lb_per_sequence": lb_per_sequence, "batch": batch, "lb_coef": 0.3, "z_coef": 0.05}
    x, dy = randn(T, H), randn(T, H)
    wr, wn = randn(E, H, scale=0.5), randn(E, H, scale=0.3)
    ex = [(randn(I, H, scale=0.3), randn(I, H, scale=0.3), randn(H, I, scale=0.3)) for _ in range(E)]
    sh = (randn(shared, H, scale=0.3), randn(shared, H, scale=0.3), randn(H, shared, scale=0.3),
          randn(1, H, scale=0.3)) if shared else None
    sel_bias = (randn(E, scale=0.3)).astype(np.float32) if bias else None
    eps = randn(T, E)
    counted = np.ones(T, dtype=np.uint8)
    if mask_some:
        counted[rng.random(T) < 0.3] = 0
        counted[0] = 1
    if domain:
        # Per sequence: a prompt part without target, then the record's expert; one sequence
        # holds two records of different domains, and the padding at the end has no target.
        n = T // batch
        targets = []
        for s in range(batch):
            e = int(rng.integers(E))
            seq = [-1] * 2 + [e] * (n - 3) + [-1]
            if s == 1:
                seq[n // 2:n - 1] = [(e + 1) % E] * (n - 1 - n // 2)
            targets += seq
        case["route_targets"] = targets
        case["domain_coef"] = 0.7
        case["domain_per_token"] = domain_per_token
    xt, wrt, wnt = leaf(x), leaf(wr), leaf(wn)
    ext = [tuple(leaf(a) for a in e) for e in ex]
    sht = None
    if sh:
        sht = (leaf(sh[0]), leaf(sh[1]), leaf(sh[2]), leaf(sh[3]) if shared_gate else None)
    y, lb, zl, dom = moe(case, xt, wrt, wnt, ext, sht, sel_bias, torch.from_numpy(eps.astype(np.float64)), counted,
                         batch)
    total = (y * torch.from_numpy(dy.astype(np.float64))).sum() + case["lb_coef"] * lb + case["z_coef"] * zl
    if dom is not None:
        total = total + case["domain_coef"] * dom
        case["domain"] = float(dom)
    total.backward()
    case.update({"lb": float(lb), "z": float(zl)})
    save = manifest.save
    save(case, "x", x)
    save(case, "dy", dy)
    save(case, "eps", eps)
    save(case, "counted", counted)
    save(case, "w_router", wr)
    save(case, "w_noise", wn)
    save(case, "w_gate", np.stack([e[0] for e in ex]))
    save(case, "w_up", np.stack([e[1] for e in ex]))
    save(case, "w_down", np.stack([e[2] for e in ex]))
    save(case, "y", f32(y))
    save(case, "dx", f32(xt.grad))
    save(case, "dw_router", f32(wrt.grad))
    save(case, "dw_noise", f32(wnt.grad) if wnt.grad is not None else np.zeros_like(wn))
    save(case, "dw_gate", np.stack([f32(e[0].grad) if e[0].grad is not None else np.zeros_like(ex[i][0])
                                     for i, e in enumerate(ext)]))
    save(case, "dw_up", np.stack([f32(e[1].grad) if e[1].grad is not None else np.zeros_like(ex[i][1])
                                   for i, e in enumerate(ext)]))
    save(case, "dw_down", np.stack([f32(e[2].grad) if e[2].grad is not None else np.zeros_like(ex[i][2])
                                     for i, e in enumerate(ext)]))
    if bias:
        save(case, "selection_bias", sel_bias)
    if sh:
        for nm, arr, t in (("s_gate", sh[0], sht[0]), ("s_up", sh[1], sht[1]), ("s_down", sh[2], sht[2])):
            save(case, nm, arr)
            save(case, "d" + nm, f32(t.grad))
        if shared_gate:
            save(case, "s_wg", sh[3])
            save(case, "ds_wg", f32(sht[3].grad))
    manifest.cases.append(case)


add_case("softmax_topk_renorm", "softmax_topk")
add_case("softmax_topk_qwen_no_renorm_shared_gated", "softmax_topk", renormalize=False, shared=20)
add_case("topk_softmax_makemoe", "topk_softmax", E=8, k=2)
add_case("switch_capacity_0_75", "switch", k=1, capacity_factor=0.75, T=16)
add_case("noisy_topk_capacity_0_8", "noisy_topk", E=8, k=2, capacity_factor=0.8, T=16)
add_case("noisy_topk_eval_no_noise", "noisy_topk", E=8, k=2, training=False)
add_case("expert_choice_cf2", "expert_choice", E=4, k=2, capacity_factor=2.0, T=12)
add_case("expert_choice_cf1_eval_cf_half", "expert_choice", E=4, capacity_factor=1.0, eval_capacity_factor=0.5,
         training=False, T=10)
add_case("selection_bias_residual_moe", "softmax_topk", k=1, bias=True, shared=24, shared_gate=False)
add_case("capacity_min_per_sequence_masked", "softmax_topk", k=2, capacity_factor=1.0, min_capacity=3,
         lb_per_sequence=True, batch=3, mask_some=True, T=12)
add_case("topk_softmax_bias_capacity", "topk_softmax", E=6, k=2, bias=True, capacity_factor=0.75, T=15)
add_case("domain_supervision_per_sequence", "softmax_topk", k=2, E=4, lb_per_sequence=True, batch=3, T=18,
         domain=True)
add_case("domain_supervision_switch_capacity", "switch", k=1, E=4, capacity_factor=1.0, batch=2, T=16,
         mask_some=True, domain=True)
add_case("domain_supervision_per_token_top1", "softmax_topk", k=1, E=4, batch=2, T=14, domain=True,
         domain_per_token=True)
manifest.write()
