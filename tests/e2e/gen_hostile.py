"""Writes the hostile-input cases that tests/e2e/test_hostile.cpp runs through the CLI.

A small valid model is built first (an HF directory written with `safetensors` and `tokenizers`,
then a GGUF of it written by `moeforge convert`), with a valid recipe and datasets. Every case
is one of those with one thing broken: a file cut short at each section, wrong magic, huge
counts, offsets past the end, sizes whose byte count wraps 2^64, deep nesting, absurd config
values, alias bombs, invalid UTF-8, binary data where text belongs, and directories with the
wrong things in them. The controls (the valid files) must load; every case must fail cleanly.

cases.json lists them: {name, kind, args, names, stdin?, expect}. `names` is the text the error
message must contain (the broken file, and where it applies its key), `expect` is "error" or
"ok". Run: gen_hostile.py OUT_DIR (the test's fixture directory; $MOEFORGE_BIN is the CLI).
"""
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
from gguf import GGUFReader
from safetensors.numpy import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from tiny_bpe import train_byte_level_bpe  # noqa: E402

OUT = os.path.abspath(sys.argv[1])
BIN = os.environ["MOEFORGE_BIN"]
CASES = []
U64 = 2**64


def case(name, kind, args, names, expect="error", stdin=None):
    c = {"name": name, "kind": kind, "args": args, "names": names, "expect": expect}
    if stdin is not None:
        c["stdin"] = stdin
    CASES.append(c)


def path(*parts):
    return os.path.join(OUT, *parts)


def write_bytes(p, data):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    return p


def write_text(p, text):
    return write_bytes(p, text.encode("utf-8"))


def write_json(p, obj):
    return write_text(p, json.dumps(obj, ensure_ascii=False))


# --- the valid model ------------------------------------------------------------------------

def corpus():
    words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jam boxes".split()
    rng = np.random.default_rng(3)
    return [" ".join(rng.choice(words, 12)) + f" {i}." for i in range(400)]


CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16,
    "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "num_key_value_heads": 1, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0, "tie_word_embeddings": True, "bos_token_id": 0, "eos_token_id": 1,
}
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def build_tokenizer(out_dir):
    tok = train_byte_level_bpe(corpus(), 300, ["<|im_start|>", "<|im_end|>"])
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    return tok.get_vocab_size()


def weights(cfg):
    rng = np.random.default_rng(0)
    h, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = h // cfg["num_attention_heads"] * cfg["num_key_value_heads"]
    mat = lambda rows, cols: (rng.standard_normal((rows, cols)) * 0.1).astype(np.float32)  # noqa: E731
    t = {"model.embed_tokens.weight": mat(v, h), "model.norm.weight": np.ones(h, np.float32)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t |= {p + "input_layernorm.weight": np.ones(h, np.float32),
              p + "post_attention_layernorm.weight": np.ones(h, np.float32),
              p + "self_attn.q_proj.weight": mat(h, h), p + "self_attn.k_proj.weight": mat(kv, h),
              p + "self_attn.v_proj.weight": mat(kv, h), p + "self_attn.o_proj.weight": mat(h, h),
              p + "mlp.gate_proj.weight": mat(f, h), p + "mlp.up_proj.weight": mat(f, h),
              p + "mlp.down_proj.weight": mat(h, f)}
    return t


def build_base():
    base = path("base")
    os.makedirs(base, exist_ok=True)
    cfg = dict(CONFIG, vocab_size=build_tokenizer(base))
    write_json(os.path.join(base, "config.json"), cfg)
    write_json(os.path.join(base, "tokenizer_config.json"),
               {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "chat_template": TEMPLATE})
    save_file(weights(cfg), os.path.join(base, "model.safetensors"))
    subprocess.run([BIN, "convert", "-m", base, "-o", path("base.gguf"), "--type", "f32"], check=True,
                   stdout=subprocess.DEVNULL)
    return base


def variant(name, replace=None, drop=()):
    """A copy of the valid HF directory with some files replaced (bytes or str) or removed."""
    d = path("hf", name)
    shutil.copytree(path("base"), d)
    for f in drop:
        os.remove(os.path.join(d, f))
    for f, content in (replace or {}).items():
        p = os.path.join(d, f)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
        if content is None:
            continue
        write_bytes(p, content if isinstance(content, bytes) else content.encode("utf-8"))
    return d


def nested(depth, open_="[", close="]", inner="0"):
    return open_ * depth + inner + close * depth


# --- GGUF ------------------------------------------------------------------------------------

class GgufLayout:
    """Byte offsets of the sections and fields of the valid GGUF, from the reference reader."""

    def __init__(self, p):
        self.bytes = open(p, "rb").read()
        r = GGUFReader(p)
        origin = r.data.ctypes.data  # every part is a view into the memory-mapped file
        self.part_offset = lambda part: part.ctypes.data - origin  # noqa: E731
        self.fields = {name: f for name, f in r.fields.items()}
        self.tensors = r.tensors
        self.data_offset = r.data_offset

    def value_offset(self, key, part=-1):
        f = self.fields[key]
        return self.part_offset(f.parts[f.data[0] if part == -1 else part])


def gguf_cases():
    lay = GgufLayout(path("base.gguf"))
    b = lay.bytes
    n_tensors, n_kv = struct.unpack_from("<QQ", b, 8)

    def gguf(name, data, names=None, args_extra=()):
        p = write_bytes(path("gguf", name + ".gguf"), data)
        case("gguf_" + name, "gguf", ["info", "-m", p, *args_extra], [name + ".gguf"] + (names or []))

    def patched(offset, fmt, value):
        d = bytearray(b)
        struct.pack_into(fmt, d, offset, value)
        return bytes(d)

    # Truncation at every section and inside every field.
    cuts = {0, 2, 4, 6, 8, 12, 16, 20, 24, lay.data_offset, lay.data_offset + 7, len(b) - 1}
    for f in lay.fields.values():
        if f.offset >= 24:
            cuts |= {f.offset, f.offset + 5, f.offset + 8 + len(f.name) + 2}
    for t in lay.tensors:
        cuts |= {t.field.offset, t.field.offset + 3, t.data_offset + 1}
    for cut in sorted(c for c in cuts if 0 <= c < len(b)):
        gguf(f"truncated_at_{cut}", b[:cut])

    gguf("wrong_magic", b"GGUX" + b[4:])
    gguf("text_file", b"this is not a model file at all\n" * 10)
    for v in (0, 1, 4, 0xFFFFFFFF):
        gguf(f"version_{v}", patched(4, "<I", v))
    for label, v in (("max", 2**63 - 1), ("2p32", 2**32 + 1), ("plus1", n_tensors + 1)):
        gguf(f"tensor_count_{label}", patched(8, "<Q", v))
    for label, v in (("max", 2**64 - 1), ("2p40", 2**40), ("plus1", n_kv + 1), ("zero", 0)):
        gguf(f"kv_count_{label}", patched(16, "<Q", v))
    first = min((f for f in lay.fields.values() if f.offset >= 24), key=lambda f: f.offset)
    for label, v in (("max", 2**64 - 1), ("2p32", 2**32), ("past_end", len(b))):
        gguf(f"key_length_{label}", patched(first.offset, "<Q", v))
    gguf("value_type_99", patched(first.offset + 8 + len(first.name), "<I", 99))
    gguf("key_invalid_utf8", patched(first.offset + 8, "<B", 0xFF))

    # Arrays: the token list with a huge count, an invalid element type, a huge string inside.
    tokens = lay.fields["tokenizer.ggml.tokens"]
    arr_type_off = lay.part_offset(tokens.parts[3])
    for label, v in (("max", 2**64 - 1), ("2p62", 2**62), ("2p32", 2**32)):
        gguf(f"array_count_{label}", patched(arr_type_off + 4, "<Q", v))
    gguf("array_element_type_99", patched(arr_type_off, "<I", 99))
    gguf("array_string_length_max", patched(lay.part_offset(tokens.parts[5]), "<Q", 2**64 - 1))
    gguf("token_invalid_utf8", patched(lay.part_offset(tokens.parts[6]), "<B", 0xFF))

    # Nested arrays: a key whose value is an array of arrays of ... 100000 deep.
    depth = 100000
    nest = b"".join(struct.pack("<IQ", 9, 1) for _ in range(depth)) + struct.pack("<IQ", 4, 0)
    key = b"hostile.nested"
    kv = struct.pack("<Q", len(key)) + key + struct.pack("<I", 9) + nest
    first_kv = first.offset
    d = bytearray(b[:first_kv] + kv + b[first_kv:])
    struct.pack_into("<Q", d, 16, n_kv + 1)
    gguf("nested_arrays", bytes(d))

    # Metadata values: model sizes and token ids.
    # (key, case, value, what the message must name: the GGUF key where the reader range-checks
    # it, the config field where the model's consistency check refuses it)
    for key, label, v, named in (
            ("llama.block_count", "layers_max", 0xFFFFFFFF, "llama.block_count"),
            ("llama.block_count", "layers_zero", 0, "num_hidden_layers"),
            ("llama.embedding_length", "hidden_zero", 0, "hidden_size"),
            ("llama.embedding_length", "hidden_2p31", 2**31, "llama.embedding_length"),
            ("llama.attention.head_count", "heads_zero", 0, "num_attention_heads"),
            ("llama.attention.head_count_kv", "kv_heads_3", 3, "num_key_value_heads"),
            ("llama.context_length", "context_max", 0xFFFFFFFF, "llama.context_length"),
            ("tokenizer.ggml.bos_token_id", "bos_max", 0xFFFFFFFF, "tokenizer.ggml.bos_token_id"),
            ("tokenizer.ggml.eos_token_id", "eos_past_vocab", 100000, "tokenizer.ggml.eos_token_id")):
        if key in lay.fields:
            gguf(f"meta_{label}", patched(lay.value_offset(key), "<I", v), [named])
    if "llama.rope.freq_base" in lay.fields:
        gguf("meta_rope_nan", patched(lay.value_offset("llama.rope.freq_base"), "<f", float("nan")),
             ["rope_theta"])

    # Tensor infos: parts are [name length, name, n_dims, dims..., type, offset].
    t0, t1 = lay.tensors[0], lay.tensors[1]
    dims_off = lay.part_offset(t0.field.parts[3])
    type_off = lay.part_offset(t0.field.parts[4])
    data_off = lay.part_offset(t0.field.parts[5])
    ndim_off = lay.part_offset(t0.field.parts[2])
    gguf("tensor_name_length_max", patched(t0.field.offset, "<Q", 2**64 - 1))
    for label, v in (("max", 0xFFFFFFFF), ("5", 5), ("zero", 0)):
        gguf(f"tensor_ndims_{label}", patched(ndim_off, "<I", v))
    gguf("tensor_dim_zero", patched(dims_off, "<Q", 0))
    gguf("tensor_dim_huge", patched(dims_off, "<Q", 2**63))
    if len(t0.shape) >= 2:
        d = bytearray(b)
        struct.pack_into("<QQ", d, dims_off, 2**33, 2**31 + 1)  # 2^64 + 2^33 elements: wraps to 2^33
        gguf("tensor_elements_wrap", bytes(d))
        struct.pack_into("<QQ", d, dims_off, 2**31, 2**31)  # 2^62 elements of 4 bytes: bytes wrap to 0
        gguf("tensor_bytes_wrap", bytes(d))
    gguf("tensor_type_9999", patched(type_off, "<I", 9999))
    gguf("tensor_type_q2_k", patched(type_off, "<I", 10))
    gguf("tensor_offset_past_end", patched(data_off, "<Q", 2**60))
    gguf("tensor_offset_wraps", patched(data_off, "<Q", 2**64 - 32))
    gguf("tensor_offset_unaligned", patched(data_off, "<Q", 1))
    gguf("tensor_offset_at_end", patched(data_off, "<Q", len(b) - lay.data_offset))
    gguf("tensors_overlap", patched(lay.part_offset(t1.field.parts[-1]), "<Q", int(t0.data_offset - lay.data_offset)))
    same_length = [t for t in lay.tensors[1:] if len(t.name) == len(t0.name)]
    if same_length:  # rename another tensor to t0's name
        d = bytearray(b)
        name_off = lay.part_offset(same_length[0].field.parts[1])
        d[name_off:name_off + len(t0.name)] = t0.name.encode()
        gguf("tensor_name_duplicate", bytes(d), [t0.name])
    gguf("data_missing", b[:lay.data_offset])

    # A chat template nested beyond any sane depth, carried in the GGUF metadata.
    tmpl = lay.fields.get("tokenizer.chat_template")
    if tmpl is not None:
        start = lay.part_offset(tmpl.parts[3])  # the string's length, then its bytes
        end = start + 8 + len(tmpl.parts[4].tobytes())
        deep = ("{{" + "(" * 20000 + "1" + ")" * 20000 + "}}").encode()
        deep += b" " * ((end - start - 8 - len(deep)) % 32)  # keep the data section where it was aligned
        gguf("chat_template_nested", b[:start] + struct.pack("<Q", len(deep)) + deep + b[end:], ["template"])

    case("gguf_control", "control", ["info", "-m", path("base.gguf")], [], expect="ok")


# --- safetensors, config.json, tokenizers and templates in an HF directory ---------------------

def st_header(p):
    b = open(p, "rb").read()
    (n,) = struct.unpack_from("<Q", b, 0)
    return json.loads(b[8:8 + n]), b[8 + n:]


def st_bytes(header, data, raw_header=None):
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + data


HF_FILES = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "model.safetensors.index.json"}


def hf_case(name, files, names, drop=(), args=("info", "-m")):
    """A case on a broken copy of the HF directory; file names in `names` are taken inside it."""
    d = variant(name, files, drop)
    case("hf_" + name, "hf", [*args, d], [os.path.join(name, n) if n in HF_FILES else n for n in names])


def safetensors_cases():
    st = "model.safetensors"
    raw = open(path("base", st), "rb").read()
    header, data = st_header(path("base", st))
    names = sorted(k for k in header if k != "__metadata__")
    first = names[0]

    def st_case(name, content, extra_names=(), names=None):
        hf_case("st_" + name, {st: content}, names or [st, *extra_names])

    (n,) = struct.unpack_from("<Q", raw, 0)
    for cut in (0, 4, 8, 9, 8 + n // 2, 8 + n, 8 + n + 5, len(raw) - 1):
        st_case(f"truncated_at_{cut}", raw[:cut])
    st_case("header_size_max", struct.pack("<Q", 2**64 - 1) + raw[8:])
    st_case("header_size_past_end", struct.pack("<Q", len(raw)) + raw[8:])
    st_case("header_size_zero", struct.pack("<Q", 0) + raw[8:])
    st_case("header_not_json", st_bytes(None, data, b"{\"a\": [1, 2"))
    st_case("header_is_list", st_bytes(None, data, b"[1, 2, 3]"))
    st_case("header_nested", st_bytes(None, data, ("{\"x\":" + nested(200000) + "}").encode()))
    st_case("header_invalid_utf8", st_bytes(None, data, b"{\"\xff\xfe\": 1}"))
    st_case("binary", bytes(range(256)) * 64)

    def mutate(label, fn, extra=()):
        h = json.loads(json.dumps(header))
        fn(h)
        st_case(label, st_bytes(h, data), extra)

    mutate("dtype_unknown", lambda h: h[first].update(dtype="F99"), [first])
    mutate("dtype_missing", lambda h: h[first].pop("dtype"), [first])
    mutate("shape_negative", lambda h: h[first].update(shape=[-1, 16]), [first])
    mutate("shape_fraction", lambda h: h[first].update(shape=[2.5, 16]), [first])
    mutate("shape_string", lambda h: h[first].update(shape="16"), [first])
    mutate("shape_elements_wrap", lambda h: h[first].update(shape=[2**33, 2**31 + 1]), [first])
    mutate("shape_bytes_wrap", lambda h: h[first].update(shape=[2**31, 2**31]), [first])
    mutate("shape_deep", lambda h: h[first].update(shape=[1] * 100000), [first])
    mutate("offsets_past_end", lambda h: h[first].update(data_offsets=[0, len(data) + 4096]), [first])
    mutate("offsets_reversed", lambda h: h[first].update(data_offsets=h[first]["data_offsets"][::-1]), [first])
    mutate("offsets_huge", lambda h: h[first].update(data_offsets=[2**64 - 8, 2**64 - 4]), [first])
    mutate("offsets_negative", lambda h: h[first].update(data_offsets=[-8, 0]), [first])
    mutate("offsets_overlap", lambda h: h[names[1]].update(data_offsets=h[first]["data_offsets"]), [])
    mutate("offsets_size_mismatch",
           lambda h: h[first].update(data_offsets=[h[first]["data_offsets"][0], h[first]["data_offsets"][0] + 4]),
           [first])
    # A tensor missing from the directory (it may be in no shard): the message names the directory.
    h = json.loads(json.dumps(header))
    h.pop(first)
    st_case("tensor_missing", st_bytes(h, data), names=["st_tensor_missing", first])
    mutate("metadata_not_object", lambda h: h.update(__metadata__=[1, 2]), [])
    mutate("entry_not_object", lambda h: h.update({first: 7}), [first])
    dup = json.dumps(header, separators=(",", ":"))
    dup = dup[:-1] + "," + json.dumps(first) + ":" + json.dumps(header[first]) + "}"
    st_case("duplicate_name", st_bytes(None, data, dup.encode()), [first])


def config_cases():
    cfg = json.load(open(path("base", "config.json")))

    def cfg_case(label, value, key=None):
        content = value if isinstance(value, (str, bytes)) else json.dumps(value)
        hf_case("cfg_" + label, {"config.json": content}, ["config.json"] + ([key] if key else []))

    def with_(key, v):
        return dict(cfg, **{key: v})

    cfg_case("not_json", "{\"hidden_size\": 16,")
    cfg_case("empty", "")
    cfg_case("list", "[1, 2]")
    cfg_case("invalid_utf8", b"{\"model_type\": \"llama\xff\"}")
    cfg_case("nested", "{\"a\":" + nested(200000) + "}")
    cfg_case("binary", bytes(range(256)) * 16)
    for key, label, v in (("hidden_size", "hidden_wraps_int", 4294967312), ("hidden_size", "hidden_fraction", 16.5),
                          ("hidden_size", "hidden_string", "16"), ("hidden_size", "hidden_negative", -16),
                          ("hidden_size", "hidden_zero", 0), ("hidden_size", "hidden_2p40", 2**40),
                          ("num_hidden_layers", "layers_2p31", 2**31 - 1), ("num_hidden_layers", "layers_zero", 0),
                          ("num_attention_heads", "heads_zero", 0), ("num_attention_heads", "heads_not_divisor", 3),
                          ("num_key_value_heads", "kv_heads_not_divisor", 3),
                          ("intermediate_size", "intermediate_2p31", 2**31 - 1),
                          ("vocab_size", "vocab_2p40", 2**40), ("max_position_embeddings", "context_2p40", 2**40),
                          ("max_position_embeddings", "context_negative", -1), ("rms_norm_eps", "eps_string", "tiny"),
                          ("rms_norm_eps", "eps_negative", -1.0), ("rope_theta", "rope_negative", -1.0),
                          ("rope_theta", "rope_zero", 0.0), ("tie_word_embeddings", "tie_string", "yes"),
                          ("hidden_act", "activation_gelu", "gelu"), ("model_type", "model_type_unknown", "gpt5"), ("model_type", "model_type_number", 7),
                          ("eos_token_id", "eos_2p40", 2**40),
                          ("eos_token_id", "eos_fraction", 1.5)):
        cfg_case(label, with_(key, v), key)
    moe = dict(cfg, model_type="mixtral", architectures=["MixtralForCausalLM"], num_local_experts=4,
               num_experts_per_tok=8)
    cfg_case("topk_over_experts", moe, "num_experts_per_tok")
    cfg_case("experts_2p31", dict(moe, num_local_experts=2**31 - 1, num_experts_per_tok=2), "num_experts")
    # The tensors disagree with the config: the message names the tensor and both shapes.
    hf_case("cfg_vocab_mismatch", {"config.json": json.dumps(with_("vocab_size", cfg["vocab_size"] + 1))},
            ["cfg_vocab_mismatch", "model.embed_tokens.weight"])
    hf_case("cfg_missing", {}, ["cfg_missing", "no config.json"], drop=["config.json"])
    d = variant("cfg_is_directory", {"config.json": None})
    os.makedirs(os.path.join(d, "config.json"))
    case("hf_cfg_is_directory", "hf", ["info", "-m", d], [os.path.join("cfg_is_directory", "config.json")])


def tokenizer_cases():
    tj = json.load(open(path("base", "tokenizer.json")))

    def tok_case(label, value, key=None):
        content = value if isinstance(value, (str, bytes)) else json.dumps(value)
        hf_case("tok_" + label, {"tokenizer.json": content}, ["tokenizer.json"] + ([key] if key else []))

    def mod(fn):
        t = json.loads(json.dumps(tj))
        fn(t)
        return t

    tok_case("not_json", "{\"model\": ")
    tok_case("empty", "")
    tok_case("invalid_utf8", b"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"\xff\": 0}}}")
    def with_raw(key, raw):  # the JSON text `raw` as the value of `key` (too deep for json.dumps)
        return json.dumps(dict(tj, **{key: "@@RAW@@"})).replace('"@@RAW@@"', raw)

    tok_case("normalizer_nested", with_raw("normalizer", nested(
        100000, '{"type":"Sequence","normalizers":[', "]}", '{"type":"Lowercase"}')), "normalizer")
    tok_case("pre_tokenizer_nested", with_raw("pre_tokenizer", nested(
        1000, '{"type":"Sequence","pretokenizers":[', "]}", '{"type":"ByteLevel"}')), "pre_tokenizer")
    tok_case("model_unigram", mod(lambda t: t.update(model={"type": "Unigram", "vocab": [["a", 0.0]]})), "Unigram")
    tok_case("model_missing", mod(lambda t: t.pop("model")), "model")
    tok_case("vocab_id_2p40", mod(lambda t: t["model"]["vocab"].update(zzzz=2**40)), "zzzz")
    tok_case("vocab_id_negative", mod(lambda t: t["model"]["vocab"].update(zzzz=-5)), "zzzz")
    tok_case("vocab_id_fraction", mod(lambda t: t["model"]["vocab"].update(zzzz=3.5)), "zzzz")
    tok_case("vocab_is_list", mod(lambda t: t["model"].update(vocab=[1, 2, 3])), "vocab")
    tok_case("merge_unknown_token", mod(lambda t: t["model"]["merges"].insert(0, "qqqq zzzz")), "merge")
    tok_case("added_token_id_2p40", mod(lambda t: t["added_tokens"][0].update(id=2**40)), "added_tokens")


def template_cases():
    base_cfg = json.load(open(path("base", "tokenizer_config.json")))
    chat = ["generate", "--chat", "-p", "hi", "--max-tokens", "1", "--temperature", "0", "-m"]

    def tmpl_case(label, template, names=("tokenizer_config.json",), run_chat=False):
        files = {"tokenizer_config.json": json.dumps(dict(base_cfg, chat_template=template))}
        hf_case("tmpl_" + label, files, list(names), args=chat if run_chat else ("info", "-m"))

    tmpl_case("nested_parens", "{{" + "(" * 20000 + "1" + ")" * 20000 + "}}")
    tmpl_case("nested_blocks", "{% if 1 %}" * 5000 + "x" + "{% endif %}" * 5000)
    tmpl_case("nested_lists", "{{ " + nested(20000) + " }}")
    tmpl_case("long_chain", "{{ " + " + ".join(["1"] * 50000) + " }}")
    tmpl_case("unclosed", "{% for m in messages %}{{ m.content }}")
    tmpl_case("loop_1e9", "{% for i in range(1000000000) %}x{% endfor %}", run_chat=True)
    tmpl_case("power_huge", "{{ 2 ** 1000000000000 }}", run_chat=True)
    tmpl_case("string_times_huge", "{{ 'x' * 1000000000 }}", run_chat=True)
    tmpl_case("int_overflow", "{{ 9223372036854775807 + 1 }}", run_chat=True)
    tmpl_case("int_min_div", "{{ (-9223372036854775807 - 1) // -1 }}", run_chat=True)
    tmpl_case("recursive_macro", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", run_chat=True)
    tmpl_case("doubling_join", "{% set ns = namespace(s='xx') %}{% for i in range(64) %}"
                               "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}", run_chat=True)
    tmpl_case("deep_list_build", "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}"
                                 "{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l | tojson }}", run_chat=True)
    tmpl_case("deep_list_print", "{% set ns = namespace(l=[]) %}{% for i in range(1000000) %}"
                                 "{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}", run_chat=True)
    tmpl_case("namespace_cycle", "{% set ns = namespace(l=[]) %}{% set ns.l = [ns] %}{{ ns }}", run_chat=True)
    tmpl_case("shared_doubling_compare", "{% set a = namespace(l=[1]) %}{% set b = namespace(l=[1]) %}"
                                         "{% for i in range(60) %}{% set a.l = [a.l, a.l] %}{% set b.l = [b.l, b.l] %}"
                                         "{% endfor %}{{ a.l == b.l }}{{ a.l }}", run_chat=True)
    tmpl_case("not_string", 42)
    tmpl_case("list_without_default", [{"name": "tool_use", "template": "x"}])
    hf_case("tmpl_config_not_json", {"tokenizer_config.json": "{\"chat_template\": "}, ["tokenizer_config.json"])
    hf_case("tmpl_jinja_file_nested", {"tokenizer_config.json": json.dumps({"eos_token": "<|im_end|>"}),
                                       "chat_template.jinja": "{% if 1 %}" * 5000}, ["chat_template.jinja"])


def directory_cases():
    os.makedirs(path("dirs", "empty"), exist_ok=True)
    case("dir_empty", "dir", ["info", "-m", path("dirs", "empty")], ["empty"])
    case("dir_missing", "dir", ["info", "-m", path("dirs", "no_such_model")], ["no_such_model"])
    os.makedirs(path("dirs", "model.gguf"), exist_ok=True)
    case("dir_named_gguf", "dir", ["info", "-m", path("dirs", "model.gguf")], ["model.gguf"])
    d = variant("weights_is_directory", {"model.safetensors": None})
    os.makedirs(os.path.join(d, "model.safetensors"))
    case("hf_weights_is_directory", "hf", ["info", "-m", d], ["weights_is_directory"])
    hf_case("weights_missing", {}, ["weights_missing"], drop=["model.safetensors"])
    hf_case("tokenizer_missing", {}, ["tokenizer_missing"], drop=["tokenizer.json"])
    index = {"metadata": {}, "weight_map": {"model.embed_tokens.weight": "../../../../../../etc/passwd"}}
    hf_case("index_escapes", {"model.safetensors.index.json": json.dumps(index)}, ["model.safetensors.index.json"],
            drop=["model.safetensors"])
    index = {"metadata": {}, "weight_map": {"model.embed_tokens.weight": "missing-00001.safetensors"}}
    hf_case("index_shard_missing", {"model.safetensors.index.json": json.dumps(index)}, ["missing-00001"],
            drop=["model.safetensors"])
    hf_case("index_not_object", {"model.safetensors.index.json": "[]"}, ["model.safetensors.index.json"],
            drop=["model.safetensors"])


# --- recipes and datasets ----------------------------------------------------------------------

RECIPE = """model:
  init: scratch
  config: {model_type: mixtral, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1,
           num_attention_heads: 2, num_key_value_heads: 1, num_local_experts: 2,
           num_experts_per_tok: 1, max_position_embeddings: 32, tie_word_embeddings: true}
tokenizer: char
data:
  train: DATA
train: {steps: 2, batch: 2, seq_len: 16, lr: 1.0e-3, warmup: 1, eval_every: 0, checkpoint_every: 0}
output: OUTPUT
"""


def recipe_cases():
    rdir = path("recipes")
    os.makedirs(rdir, exist_ok=True)
    corpus_path = write_text(os.path.join(rdir, "corpus.txt"), "\n".join(corpus()) + "\n")

    def recipe_text(name, data=corpus_path):
        return RECIPE.replace("DATA", data).replace("OUTPUT", os.path.join(rdir, "out_" + name))

    def recipe(name, content, names=(), data_file=None):
        p = os.path.join(rdir, name + ".yaml")
        write_bytes(p, content if isinstance(content, bytes) else content.encode("utf-8"))
        case("recipe_" + name, "recipe", ["train", p, "--quiet"], [data_file or name + ".yaml", *names])

    good = recipe_text("control")
    write_text(os.path.join(rdir, "control.yaml"), good)
    case("recipe_control", "control", ["train", os.path.join(rdir, "control.yaml"), "--quiet"], [], expect="ok")

    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 12):
        bomb += f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]\n"
    recipe("alias_bomb", recipe_text("alias_bomb") + bomb)
    recipe("alias_simple", recipe_text("alias_simple").replace("steps: 2", "steps: &s 2, eval_windows: *s"))
    recipe("nested_flow", "x: " + nested(100000) + "\n" + recipe_text("nested_flow"))
    recipe("nested_block", "".join("  " * i + f"k{i}:\n" for i in range(2000)) + "  " * 2000 + "v: 1\n")
    recipe("huge", recipe_text("huge") + "comment: \"" + "x" * (5 << 20) + "\"\n")
    recipe("invalid_utf8", recipe_text("invalid_utf8").encode() + b"sample: {prompt: \"\xff\xfe\"}\n")
    recipe("binary", bytes(range(256)) * 32)
    recipe("empty", "")
    recipe("list", "- 1\n- 2\n")
    recipe("multi_document", recipe_text("multi_document") + "---\n" + recipe_text("multi_document"))
    recipe("unclosed_flow", "train: {steps: 2, batch: [\n")
    recipe("tab_indent", "model:\n\tinit: scratch\n")
    for label, key, old, new in (("unknown_key", "stepz", "steps: 2", "stepz: 2"),
                                 ("batch_wraps_int", "batch", "batch: 2", "batch: 4294967298"),
                                 ("batch_fraction", "batch", "batch: 2", "batch: 2.5"),
                                 ("batch_negative", "batch", "batch: 2", "batch: -2"),
                                 ("batch_string", "batch", "batch: 2", "batch: two"),
                                 ("steps_2p63", "steps", "steps: 2", "steps: 9223372036854775808"),
                                 ("seq_len_zero", "seq_len", "seq_len: 16", "seq_len: 0"),
                                 ("lr_inf", "lr", "lr: 1.0e-3", "lr: .inf"),
                                 ("lr_nan", "lr", "lr: 1.0e-3", "lr: .nan"),
                                 ("lr_negative", "lr", "lr: 1.0e-3", "lr: -1"),
                                 ("warmup_negative", "warmup", "warmup: 1", "warmup: -1"),
                                 ("beta2_over_one", "beta2", "warmup: 1", "warmup: 1, beta2: 1.5"),
                                 ("clip_negative", "clip", "warmup: 1", "warmup: 1, clip: -1"),
                                 ("min_lr_ratio_2", "min_lr_ratio", "warmup: 1", "warmup: 1, min_lr_ratio: 2"),
                                 ("hidden_wraps_int", "hidden_size", "hidden_size: 16", "hidden_size: 4294967312"),
                                 ("layers_2p31", "num_hidden_layers", "num_hidden_layers: 1",
                                  "num_hidden_layers: 2147483647"),
                                 ("experts_huge", "num_experts", "num_local_experts: 2",
                                  "num_local_experts: 100000000"),
                                 ("init_unknown", "init", "init: scratch", "init: magic"),
                                 ("config_misspelt_key", "num_local_expert", "num_local_experts: 2",
                                  "num_local_expert: 2"),
                                 ("config_llama_with_experts", "num_local_experts", "model_type: mixtral",
                                  "model_type: llama"),
                                 ("config_activation", "hidden_act", "hidden_size: 16",
                                  "hidden_size: 16, hidden_act: gelu"),
                                 ("tokenizer_missing", "tokenizer", "tokenizer: char", "tokenizer: /no/such/tokenizer.json")):
        recipe(label, recipe_text(label).replace(old, new), [key])

    # Datasets named by an otherwise valid recipe.
    def data_recipe(label, content, suffix=".txt"):
        f = write_bytes(os.path.join(rdir, "data_" + label + suffix), content)
        recipe("data_" + label, recipe_text("data_" + label, f), data_file="data_" + label + suffix)

    data_recipe("nul_in_text", b"to be or not to be\x00\x00\x00 that is the question\n" * 50)
    data_recipe("binary", bytes(range(256)) * 64)
    data_recipe("invalid_utf8", b"to be or not \xff\xfe to be\n" * 50)
    data_recipe("empty", b"")
    data_recipe("jsonl_not_json", b"{\"text\": \"to be\"}\n{\"text\": \n", ".jsonl")
    data_recipe("jsonl_wrong_type", b"{\"text\": 42}\n" * 10, ".jsonl")
    data_recipe("jsonl_nested", ("{\"text\": " + nested(100000) + "}\n").encode(), ".jsonl")
    data_recipe("jsonl_invalid_utf8", b"{\"text\": \"to be \xff\"}\n" * 10, ".jsonl")
    os.makedirs(os.path.join(rdir, "data_is_directory.txt"), exist_ok=True)
    recipe("data_directory", recipe_text("data_directory", os.path.join(rdir, "data_is_directory.txt")),
           data_file="data_is_directory.txt")
    recipe("data_missing", recipe_text("data_missing", os.path.join(rdir, "no_such_data.txt")),
           data_file="no_such_data.txt")


def dataset_cases():
    ddir = path("datasets")

    def ds(label, content, suffix=".jsonl", sub="convert"):
        f = write_bytes(os.path.join(ddir, label + suffix), content)
        args = ["data", "convert", f, "-o", os.path.join(ddir, "out_" + label)] if sub == "convert" else \
            ["data", "stats", f]
        case(f"data_{sub}_{label}", "dataset", args, [label + suffix])

    for sub in ("convert", "stats"):
        ds("not_json", b"{\"instruction\": \"a\", \"output\": \n", sub=sub)
        ds("invalid_utf8", b"{\"instruction\": \"a\xff\", \"output\": \"b\"}\n", sub=sub)
        ds("nested", ("{\"instruction\": " + nested(100000) + ", \"output\": \"b\"}\n").encode(), sub=sub)
        ds("binary", bytes(range(256)) * 64, sub=sub)
        ds("wrong_types", b"{\"instruction\": 1, \"output\": [2]}\n", sub=sub)
        ds("messages_not_list", b"{\"messages\": \"hello\"}\n", sub=sub)
        ds("record_is_list", b"[1, 2, 3]\n", sub=sub)
    # Chat-format data with the shipped domain map, so the turns themselves are read.
    domain_map = os.path.join(os.environ.get("MOEFORGE_SOURCE_DIR", "."), "examples", "data", "domains.yaml")
    for label, content in (
            ("messages_tool_role", b"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, "
                                   b"{\"role\": \"tool\", \"content\": \"y\"}]}\n"),
            ("sharegpt_too_many_turns",
             json.dumps({"conversations": [{"from": "human", "value": "x"}] * 5000}).encode() + b"\n")):
        f = write_bytes(os.path.join(ddir, label + ".jsonl"), content)
        case(f"data_convert_{label}", "dataset",
             ["data", "convert", f, "-o", os.path.join(ddir, "out_" + label), "--domains", domain_map], [label + ".jsonl"])
    ds("json_truncated", b"[{\"instruction\": \"a\", \"output\": \"b\"}, {\"instr", ".json")
    ds("json_nested", ("[" + nested(100000) + "]").encode(), ".json")
    ds("text_with_nul", b"plain text\x00 with a NUL\n" * 10, ".txt")


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    build_base()
    case("hf_control", "control", ["info", "-m", path("base")], [], expect="ok")
    case("hf_control_chat", "control",
         ["generate", "--chat", "-p", "hi", "--max-tokens", "1", "--temperature", "0", "-m", path("base")], [],
         expect="ok")
    gguf_cases()
    safetensors_cases()
    config_cases()
    tokenizer_cases()
    template_cases()
    directory_cases()
    recipe_cases()
    dataset_cases()
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    write_json(path("cases.json"), {"cases": CASES})
    print(f"{len(CASES)} hostile-input cases in {OUT}")


if __name__ == "__main__":
    main()
