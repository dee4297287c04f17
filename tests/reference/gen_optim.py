#!/usr/bin/env python3
"""Fixtures for tests/reference/test_optim.cpp: torch.optim.AdamW with two parameter groups
(different learning rates, weight decay on one), clip_grad_norm_ before every step and a
warmup-cosine learning-rate multiplier, over several steps of given gradients. Writes the
initial parameters, the gradients of every step, the gradient norms and the parameters after
every step, in the manifest format of gen_kernels.py."""
import json
import math
import os
import sys

import numpy as np
import torch

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
rng = np.random.default_rng(77)
STEPS, WARMUP, MIN_RATIO, MAX_NORM = 7, 2, 0.1, 1.0
SHAPES = {"model.layers.0.mlp.up_proj.weight": (6, 5), "model.layers.0.input_layernorm.weight": (5,),
          "model.layers.0.block_sparse_moe.gate.weight": (4, 5)}
GROUPS = [{"name": "decay", "lr": 3e-2, "weight_decay": 0.1}, {"name": "no_decay", "lr": 3e-2, "weight_decay": 0.0},
          {"name": "router", "lr": 1e-1, "weight_decay": 0.05}]
GROUP_OF = [0, 1, 2]


def multiplier(step):
    if step < WARMUP:
        return (step + 1) / WARMUP
    progress = min(1.0, (step - WARMUP) / max(1, STEPS - WARMUP))
    return MIN_RATIO + (1 - MIN_RATIO) * 0.5 * (1 + math.cos(math.pi * progress))


params = [torch.nn.Parameter(torch.from_numpy(rng.standard_normal(s).astype(np.float32))) for s in SHAPES.values()]
init = [p.detach().numpy().copy() for p in params]
opt = torch.optim.AdamW([{"params": [params[i]], "lr": GROUPS[GROUP_OF[i]]["lr"],
                          "weight_decay": GROUPS[GROUP_OF[i]]["weight_decay"]} for i in range(3)],
                        betas=(0.9, 0.95), eps=1e-8)
grads, norms, after = [[] for _ in params], [], [[] for _ in params]
for step in range(STEPS):
    scale = [0.3, 2.0, 0.8, 5.0, 0.1, 1.5, 0.6][step]  # some steps clip, some do not
    for i, p in enumerate(params):
        g = (rng.standard_normal(p.shape) * scale).astype(np.float32)
        grads[i].append(g)
        p.grad = torch.from_numpy(g.copy())
    norms.append(float(torch.nn.utils.clip_grad_norm_(params, MAX_NORM)))
    for gi, group in enumerate(opt.param_groups):
        group["lr"] = GROUPS[GROUP_OF[gi]]["lr"] * multiplier(step)
    opt.step()
    for i, p in enumerate(params):
        after[i].append(p.detach().numpy().copy())

cases = []
for i, name in enumerate(SHAPES):
    case = {"name": f"param{i}", "op": "adamw_param", "tensor": name, "shape": list(SHAPES[name]),
            "group": GROUP_OF[i]}
    for key, arr in (("init", init[i]), ("grads", np.stack(grads[i])), ("after", np.stack(after[i]))):
        fname = f"param{i}.{key}.bin"
        np.ascontiguousarray(arr, dtype=np.float32).tofile(os.path.join(out_dir, fname))
        case.setdefault("arrays", {})[key] = {"file": fname, "dtype": "float32", "shape": list(arr.shape)}
    cases.append(case)
cases.append({"name": "run", "op": "adamw_run", "steps": STEPS, "warmup": WARMUP, "min_ratio": MIN_RATIO,
              "max_norm": MAX_NORM, "norms": norms, "groups": GROUPS, "betas": [0.9, 0.95], "eps": 1e-8})
with open(os.path.join(out_dir, "manifest.json"), "w") as f:
    json.dump({"cases": cases}, f, indent=1)
print(f"gen_optim: {STEPS} AdamW steps over {len(params)} parameters -> {out_dir}")
