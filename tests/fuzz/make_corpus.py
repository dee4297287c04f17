#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/<harness>/): small valid
files of each format, made with the reference packages where one exists (gguf, safetensors).
Run once when a format's seeds should change; the files are committed."""
import json, os, sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")


def put(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def main():
    # chat templates
    put("jinja", "chatml.jinja", "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    put("jinja", "features.jinja", "{% set ns = namespace(n=0) %}{% macro m(x, y=2) %}{{ x * y }}{% endmacro %}{% for m2 in messages if m2.role != 'system' %}{{ loop.index }}:{{ m2.content | upper | replace('A', 'b') }}{{ m(loop.index) }}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}{{ messages | tojson(indent=2) }}{{ [1, 2, 3][1:] | join(',') }}{{ 7 // 2 }}{{ 2 ** 10 }}{{ 'x' if true else 'y' }}{{ bos_token ~ eos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('no') if false }}{% endif %}")
    # tokenizer.json: byte-level BPE over all 256 bytes and two merges
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    vocab["He"] = 256
    vocab["ll"] = 257
    tok = {"version": "1.0", "added_tokens": [{"id": 258, "content": "<|endoftext|>", "special": True, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False}],
           "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}]},
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
           "post_processor": {"type": "ByteLevel"}, "decoder": {"type": "ByteLevel"},
           "model": {"type": "BPE", "vocab": vocab, "merges": ["H e", "l l"]}}
    put("tokenizer_json", "bytelevel.json", json.dumps(tok))
    # config.json
    llama = {"model_type": "llama", "vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
             "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
             "rope_theta": 10000.0, "tie_word_embeddings": True}
    put("config_json", "llama.json", json.dumps(llama))
    mixtral = dict(llama, model_type="mixtral", num_local_experts=4, num_experts_per_tok=2, router_policy="noisy_topk",
                   capacity_factor=1.25, moe_layer_experts=[4, 2], first_k_dense_replace=0)
    put("config_json", "mixtral.json", json.dumps(mixtral))
    qwen = dict(llama, model_type="qwen2_moe", num_experts=4, num_experts_per_tok=2, moe_intermediate_size=8,
                shared_expert_intermediate_size=16, decoder_sparse_step=1, mlp_only_layers=[0])
    put("config_json", "qwen2_moe.json", json.dumps(qwen))
    # recipes
    put("recipe", "pretrain.yaml", "model:\n  init: scratch\n  config: {model_type: mixtral, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, num_local_experts: 4, num_experts_per_tok: 2}\ntokenizer: char\ndata:\n  train: [a.txt, b.jsonl]\n  valid_fraction: 0.1\nfreeze: [experts, 'model.layers.0.*']\ntrain: {steps: 10, batch: 2, seq_len: 16, lr: 3.0e-4, lb_scope: sequence, warmup: 2}\noutput: runs/x\nsample: {prompt: 'ROMEO:', max_tokens: 20, temperature: 0.8}\n")
    put("recipe", "sft.yaml", "model: {init: some/model}\ntokenizer: model\ndata: {train: train.jsonl, valid: valid.jsonl, format: sft, domains: [Coder, Writer], skip_bad: true}\ntrain: {steps: 3, batch: 4, seq_len: 64, grad_accum: 2, clip: 1.0, z_coef: 0.001, lb_coef: 0.01}\noutput: runs/sft\n")
    # datasets
    put("jsonl", "records.jsonl", "\n".join(json.dumps(r) for r in [
        {"instruction": "Say hi", "output": "hi", "domain": "Writer", "source": "x"},
        {"instruction": "Add", "input": "1+1", "output": "2", "domain": "Analyst", "source": "y",
         "history": [["q", "a"]]}]) + "\n")
    chats = {
        "messages.jsonl": [
            {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"},
                          {"role": "assistant", "content": "Ciao"}]},
            {"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "42"}]},
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}],
        "sharegpt.jsonl": [
            {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
            {"conversations": [{"from": "bing", "value": "x"}]}],
        "pairs.jsonl": [
            {"prompt": "2+2=", "completion": " 4"},
            {"prompt": [{"role": "user", "content": "a"}], "completion": [{"role": "assistant", "content": "b"}]}],
    }
    for name, records in chats.items():
        put("chat_data", name, "\n".join(json.dumps(r) for r in records) + "\n")
    # safetensors and GGUF, written by the reference packages
    from safetensors.numpy import save
    put("safetensors", "two.safetensors", save({"a": np.arange(6, dtype=np.float32).reshape(2, 3),
                                                 "b": np.ones((4,), dtype=np.float16)}, metadata={"format": "pt"}))
    import gguf
    path = os.path.join(OUT, "gguf", "tiny.gguf")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(1)
    w.add_context_length(32)
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["a", "b", "c", "ab"])
    w.add_token_types([1, 1, 1, 1])
    w.add_token_merges(["a b"])
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.add_tensor("blk.0.attn_q.weight", np.zeros((8, 8), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    sys.exit(main())
