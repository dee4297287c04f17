"""HF directories moeforge writes from its own runs, for check_transformers.py (called by
gen_anchors.py): two dense models fine-tuned by `moeforge train` on different texts, the
MoE `moeforge fuse` makes of them, and MoE models trained from scratch with features Mixtral
cannot hold (a shared expert and a dense first layer; Switch routing), which moeforge must write
as Qwen2-MoE; and one no transformers architecture computes (expert choice), which transformers
must refuse. Each entry carries moeforge's perplexity and greedy continuation on the directory.
"""
import json
import os
import subprocess

import numpy as np

# A second vocabulary of words from the same tokenizer's training text, so the second expert
# learns something else.
WORDS_A = "the river ran past seven old mills and a quiet town".split()
WORDS_B = "bakers sold bread at dawn while children counted boats on the water under a grey sky".split()

# Tiny MoE shapes trained from scratch (vocab_size comes from the tokenizer).
SCRATCH = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 64, "num_hidden_layers": 3,
           "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
           "tie_word_embeddings": False, "moe_num_experts": 4}

# name -> (moeforge keys on top of SCRATCH, what transformers must load it as or None: refuse)
FROM_SCRATCH = {
    "shared-dense": ({"moe_top_k": 2, "shared_expert_intermediate_size": 32, "first_k_dense_replace": 1},
                     "Qwen2MoeForCausalLM"),
    "switch": ({"moe_top_k": 1, "router_policy": "switch"}, "Qwen2MoeForCausalLM"),
    "expert-choice": ({"moe_top_k": 2, "router_policy": "expert_choice"}, None),
}


CHAT_SYSTEM = "Answer in one line."
CHAT_USER = "  Where does the river go?  "


def rendered_prompt(run, model_dir):
    """The chat prompt moeforge builds (generate --chat --verbose-prompt prints it to stderr)."""
    out = run("generate", "-m", model_dir, "--chat", "--system", CHAT_SYSTEM, "-p", CHAT_USER, "--max-tokens", "1",
              "--verbose-prompt", stderr=True)
    line = next(x for x in out.decode("utf-8").splitlines() if x.startswith("prompt: "))
    return json.loads(line[len("prompt: "):])


def _words_text(words, seed):
    rng = np.random.default_rng(seed)
    return "\n".join(" ".join(rng.choice(words, 16)) + "." for _ in range(150)) + "\n"


def _train(run, out, name, recipe):
    path = os.path.join(out, name + ".yaml")
    with open(path, "w") as f:
        json.dump(recipe, f)  # JSON is YAML
    run("train", path, "--quiet")
    return os.path.join(out, "runs", name, "model")


def _train_recipe(name, out, model, data, seed):
    return {"model": model, "tokenizer": "model",
            "data": {"train": data, "valid_fraction": 0.1},
            "train": {"steps": 12, "batch": 4, "seq_len": 48, "lr": 3.0e-3, "warmup": 2, "eval_windows": 2,
                      "seed": seed},
            "output": os.path.join(out, "runs", name)}


def hf_models(run, out, dense_dir, text_path, n_ctx, prompt):
    """Writes the directories; returns their manifest entries (name, dir, expected architecture)."""
    texts = []
    for i, words in enumerate((WORDS_A, WORDS_B)):
        p = os.path.join(out, f"text-{i}.txt")
        with open(p, "w") as f:
            f.write(_words_text(words, 20 + i))
        texts.append(p)
    dirs = {}
    for i, name in enumerate(("trained-a", "trained-b")):
        dirs[name] = _train(run, out, name, _train_recipe(name, out, {"init": dense_dir}, texts[i], i))
    fuse = {"skeleton": dense_dir,
            "experts": [{"name": "RiverTown", "source": dirs["trained-a"], "positive": ["the river ran past"]},
                        {"name": "Bakery", "source": dirs["trained-b"], "positive": ["bakers sold bread"]}],
            "top_k": 1, "router_init": {"method": "prompts"}, "output": os.path.join(out, "fused")}
    with open(os.path.join(out, "fuse.json"), "w") as f:
        json.dump(fuse, f)
    run("fuse", os.path.join(out, "fuse.json"), "--quiet")
    dirs["fused"] = os.path.join(out, "fused")
    expected = {"trained-a": "LlamaForCausalLM", "trained-b": "LlamaForCausalLM", "fused": "MixtralForCausalLM"}
    for name, (keys, arch) in FROM_SCRATCH.items():
        recipe = _train_recipe(name, out, {"init": "scratch", "config": SCRATCH | keys}, text_path, 3)
        recipe["tokenizer"] = os.path.join(dense_dir, "tokenizer.json")
        dirs[name] = _train(run, out, name, recipe)
        expected[name] = arch
    entries = []
    for name, d in dirs.items():
        config = json.load(open(os.path.join(d, "config.json")))
        e = {"name": f"{name}-hf", "dir": d, "experts": config.get("moe_num_experts", 0), "n_ctx": n_ctx,
             "text": text_path, "prompt": prompt, "expected_arch": expected[name],
             "model_type": config["model_type"]}
        if expected[name]:
            e["moeforge_ppl"] = json.loads(run("perplexity", "-m", d, "-f", text_path, "-c", str(n_ctx), "--json",
                                               "--quiet"))
            e["moeforge_greedy_hex"] = run("generate", "-m", d, "-p", prompt, "--max-tokens", "12",
                                           "--temperature", "0")[:-1].hex()
            e["chat"] = {"system": CHAT_SYSTEM, "user": CHAT_USER, "moeforge_rendered": rendered_prompt(run, d)}
        entries.append(e)
    return entries
