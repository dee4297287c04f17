"""The routing policies moeforge implements, written from their papers in plain PyTorch for the
reference tests: softmax top-k (Mixtral / Qwen2-MoE), top-k then softmax (makeMoE), Switch top-1,
noisy top-k (Shazeer et al. 2017), expert choice (Zhou et al. 2022), expert capacity with
slot-major token dropping, a selection-only bias (DeepSeek-V3), and the balance loss."""
import math

import numpy as np
import torch
import torch.nn.functional as F

POLICIES = ("softmax_topk", "topk_softmax", "switch", "noisy_topk", "expert_choice")


def capacity(policy, factor, min_capacity, tokens, experts, k):
    """Rows an expert may take in one forward pass; 0 = unlimited."""
    if policy == "expert_choice":
        c = max(min_capacity, int(math.ceil((factor if factor > 0 else k) * tokens / experts)))
        return min(max(c, 1), tokens)
    if factor <= 0:
        return 0
    kk = 1 if policy == "switch" else k
    return max(1, min_capacity, int(math.ceil(factor * tokens * kk / experts)))


def moe_combine(policy, k, renormalize, cap, z, sel, expert_fn, bias=None):
    """y = sum over kept (token, expert) pairs of gate * expert_fn(e, tokens).

    z: clean router logits [T, E]; sel: the logits routed (noisy under noisy_topk while
    training, else z); expert_fn(e, token_index_tensor) -> [n, H]; bias: numpy [E] or None.
    Returns (y, chosen [T, k] or None for expert choice, dropped slots)."""
    T, E = z.shape
    y = None

    def add(rows, contribution):
        nonlocal y
        if y is None:
            y = torch.zeros(T, contribution.shape[1], dtype=contribution.dtype)
        y = y.index_add(0, rows, contribution)

    if policy == "expert_choice":
        p = torch.softmax(z, dim=-1)
        for e in range(E):
            rows = torch.argsort(-p[:, e].detach(), stable=True)[:cap]
            add(rows, p[rows, e:e + 1] * expert_fn(e, rows))
        return y, None, 0
    kk = 1 if policy == "switch" else k
    b = torch.zeros(E, dtype=torch.float64) if bias is None else torch.as_tensor(np.asarray(bias, dtype=np.float64))
    if policy in ("softmax_topk", "switch"):
        p = torch.softmax(sel, dim=-1)
        idx = torch.topk(p.detach() + b, kk, dim=-1).indices
        gate = torch.gather(p, 1, idx)
        if policy == "softmax_topk" and renormalize:
            gate = gate / gate.sum(-1, keepdim=True)
    else:
        idx = torch.topk(sel.detach() + b, kk, dim=-1).indices
        gate = torch.softmax(torch.gather(sel, 1, idx), dim=-1)
    kept = np.ones((T, kk), dtype=bool)
    if cap > 0:
        used = np.zeros(E, dtype=int)
        for s in range(kk):  # every first choice before any second choice
            for t in range(T):
                e = int(idx[t, s])
                if used[e] < cap:
                    used[e] += 1
                else:
                    kept[t, s] = False
    for e in range(E):
        tok, slot = np.nonzero((idx.numpy() == e) & kept)
        if len(tok) == 0:
            continue
        rows = torch.as_tensor(tok)
        add(rows, gate[rows, torch.as_tensor(slot)][:, None] * expert_fn(e, rows))
    return y, idx, int((~kept).sum())


def balance_loss(z, idx, counted, experts):
    """Switch / Mixtral: E * sum_e f_e P_e over the counted rows, f from the chosen experts."""
    m = torch.as_tensor(np.asarray(counted).astype(bool))
    rows = int(m.sum())
    if rows == 0:
        return torch.zeros((), dtype=z.dtype)
    p = torch.softmax(z, dim=-1)
    f = F.one_hot(idx, experts).to(z.dtype).sum(1)[m].sum(0) / rows
    return experts * (f * p[m].sum(0) / rows).sum()
