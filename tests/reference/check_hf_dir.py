#!/usr/bin/env python3
"""Loads a model directory moeforge saved (config.json + safetensors, as transformers would
find it) with the `safetensors` package and runs the PyTorch reference forward
(torch_ref.model) on the ids given; compares its logits with moeforge's.
usage: check_hf_dir.py DIR IDS.json MOEFORGE_LOGITS.f32 [REL_TOL]; exit status 0 when they agree."""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ref.model import Config, forward  # noqa: E402


def load_state_dict(d):
    index = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    sd = {}
    for f in files:
        sd.update({k: v.to(torch.float32) for k, v in load_file(os.path.join(d, f)).items()})
    return sd


def main():
    d, ids_path, logits_path = sys.argv[1:4]
    tol = float(sys.argv[4]) if len(sys.argv) > 4 else 1e-4
    cfg_json = json.load(open(os.path.join(d, "config.json")))
    cfg = Config(cfg_json)
    sd = load_state_dict(d)
    ids = torch.tensor([json.load(open(ids_path))], dtype=torch.int64)
    ref, _ = forward(cfg, sd, ids)
    ref = ref[0].numpy().astype(np.float64)
    got = np.fromfile(logits_path, dtype=np.float32).reshape(ref.shape).astype(np.float64)
    err = np.abs(got - ref).max() / max(1e-12, np.abs(ref).max())
    print(f"{cfg_json.get('architectures')} {cfg.model_type}: {cfg.num_experts} experts, max rel err {err:.2e}")
    sys.exit(0 if err <= tol else 1)


if __name__ == "__main__":
    main()
