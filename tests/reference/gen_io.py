#!/usr/bin/env python3
"""Fixtures for tests/reference/test_io.cpp, made with the reference packages.

  gen_io.py OUT_DIR          write safetensors/GGUF files + expected values (manifest.json, *.f32)
  gen_io.py --check DIR      verify the files moeforge wrote into DIR (see test_io.cpp) with the
                             `safetensors` and `gguf` packages; exit status 0 means they read back.
  gen_io.py --check-kquant DIR ROW   moeforge's Q4_K/Q5_K/Q6_K bytes (DIR/TYPE.bin, rows of ROW
                             values of DIR/input.f32) dequantized by gguf-py equal moeforge's own
                             dequantization (DIR/TYPE.f32) bit for bit and stay close to the input.
"""
import json
import os
import sys

import numpy as np
import torch
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V
from safetensors.torch import load_file, save_file

TORCH_DTYPES = {
    "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
    "I8": torch.int8, "I16": torch.int16, "I32": torch.int32, "I64": torch.int64,
    "U8": torch.uint8, "BOOL": torch.bool,
}


def plain_tensor(dtype, shape, seed):
    g = torch.Generator().manual_seed(seed)
    if dtype.is_floating_point:
        return (torch.randn(shape, generator=g, dtype=torch.float64) * 3).to(dtype)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g) == 1
    lo, hi = (0, 255) if dtype == torch.uint8 else (-100, 100)
    if dtype == torch.int64:  # values past 2^53 check that I64 is not squeezed through double
        t = torch.randint(lo, hi, shape, generator=g, dtype=torch.int64)
        t.view(-1)[0] = (1 << 62) + 12345
        return t
    return torch.randint(lo, hi, shape, generator=g).to(dtype)


def exact_values(t):
    """Values as JSON numbers that represent each element exactly (ints stay ints)."""
    if t.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        return t.to(torch.float64).reshape(-1).tolist()
    return t.to(torch.int64).reshape(-1).tolist()


def gen_safetensors(out, manifest):
    tensors, entries = {}, []
    for i, (name, dt) in enumerate(TORCH_DTYPES.items()):
        shape = [(2, 3), (5,), (2, 2, 3), (7, 1), (1, 4), (3, 2), (6,), (2, 2), (9,), (4, 2)][i]
        t = plain_tensor(dt, shape, 100 + i)
        tensors["t." + name] = t
        entries.append({"name": "t." + name, "dtype": name, "shape": list(shape), "values": exact_values(t)})
    tensors["t.empty"] = torch.zeros((0, 4), dtype=torch.float32)
    entries.append({"name": "t.empty", "dtype": "F32", "shape": [0, 4], "values": []})
    save_file(tensors, os.path.join(out, "all_dtypes.safetensors"), metadata={"format": "pt", "note": "x"})
    manifest["safetensors"] = {"file": "all_dtypes.safetensors", "metadata": {"format": "pt", "note": "x"},
                               "tensors": entries}

    # A sharded checkpoint as transformers writes it: shards + index with weight_map.
    shard_dir = os.path.join(out, "sharded")
    os.makedirs(shard_dir, exist_ok=True)
    weight_map, sharded = {}, []
    for s in range(3):
        shard = {}
        for k in range(2):
            name = f"model.layers.{s}.w{k}"
            t = plain_tensor(torch.float32, (4, 3), 200 + 10 * s + k)
            shard[name] = t
            sharded.append({"name": name, "dtype": "F32", "shape": [4, 3], "values": exact_values(t)})
        fname = f"model-{s + 1:05d}-of-00003.safetensors"
        save_file(shard, os.path.join(shard_dir, fname), metadata={"format": "pt"})
        weight_map.update({n: fname for n in shard})
    with open(os.path.join(shard_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 6 * 48}, "weight_map": weight_map}, f, indent=2)
    manifest["sharded"] = {"dir": "sharded", "tensors": sharded}


def random_kquant_blocks(qtype, n_blocks, rng):
    """Random bytes for K-quant blocks with the fp16 scale fields set to sane values."""
    block_bytes = gguf.GGML_QUANT_SIZES[qtype][1]
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    # (offset of d, offset of dmin or None), from ggml's block_qN_K layouts
    fields = {Q.Q2_K: (80, 82), Q.Q3_K: (108, None), Q.Q4_K: (0, 2), Q.Q5_K: (0, 2), Q.Q6_K: (208, None)}
    d_off, m_off = fields[qtype]
    for off in (d_off, m_off):
        if off is None:
            continue
        vals = rng.uniform(0.001, 0.05, size=n_blocks).astype(np.float16)
        raw[:, off:off + 2] = vals.view(np.uint8).reshape(n_blocks, 2)
    return raw


def gen_gguf(out, manifest):
    rng = np.random.default_rng(7)
    path = os.path.join(out, "all.gguf")
    w = gguf.GGUFWriter(path, arch="moeforge-test")
    w.add_custom_alignment(64)
    meta = {}

    def kv(key, value, vtype, sub_type=None, expect=None):
        w.add_key_value(key, value, vtype, sub_type=sub_type)
        meta[key] = {"type": int(vtype), "value": value if expect is None else expect}
        if sub_type is not None:
            meta[key]["sub_type"] = int(sub_type)

    kv("test.u8", 250, V.UINT8)
    kv("test.i8", -100, V.INT8)
    kv("test.u16", 65000, V.UINT16)
    kv("test.i16", -32000, V.INT16)
    kv("test.u32", 4000000000, V.UINT32)
    kv("test.i32", -2000000000, V.INT32)
    kv("test.f32", 0.1, V.FLOAT32, expect=float(np.float32(0.1)))
    kv("test.bool_true", True, V.BOOL)
    kv("test.bool_false", False, V.BOOL)
    kv("test.string", "héllo ✓ \"gguf\"", V.STRING)
    kv("test.empty_string", "", V.STRING)
    kv("test.u64", 18000000000000000000, V.UINT64)
    kv("test.i64", -9000000000000000000, V.INT64)
    kv("test.f64", 3.141592653589793, V.FLOAT64)
    kv("test.arr_str", ["a", "", "Ġthe", "日本"], V.ARRAY)
    kv("test.arr_i32", [1, -2, 3], V.ARRAY)
    kv("test.arr_f32", [0.5, -1.25, 3.0], V.ARRAY)
    kv("test.arr_u64", [1, 2, 18000000000000000000], V.ARRAY, sub_type=V.UINT64)
    kv("test.arr_bool", [True, False, True], V.ARRAY)
    kv("test.nested", [[1, 2], [3, 4, 5]], V.ARRAY)
    kv("test.nested_str", [["x", "y"], ["z"]], V.ARRAY)
    kv("test.nested3", [[[1], [2, 3]], [[4]]], V.ARRAY)
    meta["general.alignment"] = {"type": int(V.UINT32), "value": 64}
    meta["general.architecture"] = {"type": int(V.STRING), "value": "moeforge-test"}

    tensors = []

    def add(name, qtype, data_bytes, shape, expected):
        # uint8 block data: gguf-py derives the element shape from the byte shape
        w.add_tensor(name, data_bytes, raw_dtype=qtype if qtype not in (Q.F32, Q.F16) else None)
        fname = name + ".f32"
        expected.astype("<f4").tofile(os.path.join(out, fname))
        tensors.append({"name": name, "type": qtype.name, "shape": list(shape), "expected": fname})

    x = rng.standard_normal((4, 64)).astype(np.float32)
    add("w.f32", Q.F32, x, x.shape, x)
    h = rng.standard_normal((3, 32)).astype(np.float16)
    add("w.f16", Q.F16, h, h.shape, h.astype(np.float32))
    b = gguf.quants.quantize(rng.standard_normal((2, 32)).astype(np.float32), Q.BF16)
    add("w.bf16", Q.BF16, b, (2, 32), gguf.quants.dequantize(b, Q.BF16))
    for qt in (Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1):
        src = (rng.standard_normal((3, 128)) * 2).astype(np.float32)
        q = gguf.quants.quantize(src, qt)
        add("w." + qt.name.lower(), qt, q, (3, 128), gguf.quants.dequantize(q, qt))
    for qt in (Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K):
        raw = random_kquant_blocks(qt, 4, rng).reshape(2, -1)  # 2 rows x 512 elements
        add("w." + qt.name.lower(), qt, raw, (2, 512), gguf.quants.dequantize(raw, qt))
    # A 3-d tensor: ne[] order is reversed against this (PyTorch) shape.
    x3 = rng.standard_normal((2, 3, 32)).astype(np.float32)
    add("w.f32_3d", Q.F32, x3, x3.shape, x3)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    manifest["gguf"] = {"file": "all.gguf", "alignment": 64, "metadata": meta, "tensors": tensors}

    # quantize_row parity: the bytes gguf-py's reference quantizers produce.
    src = (rng.standard_normal((4, 256)) * 1.5).astype(np.float32)
    src[0, :32] = 0.0             # an all-zero block (d = 0)
    src[1, :32] = np.linspace(-1, 1, 32, dtype=np.float32)
    src.tofile(os.path.join(out, "quant_input.f32"))
    qs = {}
    for qt in (Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.F16, Q.BF16):
        qb = gguf.quants.quantize(src, qt) if qt != Q.F16 else src.astype(np.float16).view(np.uint8)
        np.ascontiguousarray(qb).tofile(os.path.join(out, f"quant_{qt.name}.bin"))
        qs[qt.name] = f"quant_{qt.name}.bin"
    manifest["quantize"] = {"input": "quant_input.f32", "shape": [4, 256], "outputs": qs}


# ---------------------------------------------------------------------------------------------
# --check: the C++ test wrote these with moeforge; the pattern is shared with test_io.cpp.

def pattern(n, scale):
    i = np.arange(n, dtype=np.float64)
    return (np.sin(i * 0.37) * scale).astype(np.float32)


def check(d):
    st = load_file(os.path.join(d, "written.safetensors"))
    assert set(st) == {"a.f32", "b.bf16", "c.i64", "d.f16"}, sorted(st)
    assert st["a.f32"].shape == (3, 5) and torch.equal(st["a.f32"].reshape(-1), torch.from_numpy(pattern(15, 2.0)))
    assert st["b.bf16"].dtype == torch.bfloat16
    assert torch.equal(st["b.bf16"].reshape(-1), torch.from_numpy(pattern(8, 3.0)).to(torch.bfloat16))
    assert st["c.i64"].tolist() == [-5, 0, 1 << 40]
    assert torch.equal(st["d.f16"].reshape(-1), torch.from_numpy(pattern(6, 1.0)).to(torch.float16))
    with open(os.path.join(d, "written.safetensors"), "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    assert header["__metadata__"] == {"format": "pt", "who": "moeforge"}, header["__metadata__"]
    assert n % 8 == 0

    r = gguf.GGUFReader(os.path.join(d, "written.gguf"))
    fields = {f.name: f for f in r.fields.values()}
    assert fields["general.architecture"].contents() == "llama"
    assert fields["test.u32"].contents() == 7 and fields["test.u32"].types == [V.UINT32]
    assert fields["test.i64"].contents() == -3
    assert abs(fields["test.f32"].contents() - 0.25) == 0
    assert fields["test.bool"].contents() is True
    assert fields["test.strings"].contents() == ["x", "yy", ""]
    assert fields["test.nested"].types[:2] == [V.ARRAY, V.ARRAY]
    assert fields["general.alignment"].contents() == 64
    t = {x.name: x for x in r.tensors}
    assert set(t) == {"w.f32", "w.q8_0", "w.q4_0", "w.q4_1", "w.bf16"}, sorted(t)
    assert list(t["w.f32"].shape) == [64, 2], t["w.f32"].shape  # ne order: innermost first
    assert np.array_equal(np.asarray(t["w.f32"].data).reshape(-1), pattern(128, 1.0))
    for name, qt in (("w.q8_0", Q.Q8_0), ("w.q4_0", Q.Q4_0), ("w.q4_1", Q.Q4_1)):
        assert t[name].tensor_type == qt
        src = pattern(2 * 64, 1.0).reshape(2, 64)
        # our quantize_row must produce gguf-py's reference bytes, and they must dequantize
        assert np.array_equal(np.asarray(t[name].data).reshape(2, -1), gguf.quants.quantize(src, qt)), name
        deq = gguf.quants.dequantize(np.asarray(t[name].data).reshape(2, -1), qt)
        assert np.abs(deq - src).max() < 0.2, name
    assert t["w.bf16"].tensor_type == Q.BF16
    print("check ok")


def check_kquant(d, row):
    src = np.fromfile(os.path.join(d, "input.f32"), dtype=np.float32).reshape(-1, row)
    # Relative RMS error bounds per row kind (Gaussian rows; the awkward rows get 4x): loose
    # enough for any sound encoder, tight enough that misplaced bits or scales fail.
    bound = {Q.Q4_K: 0.12, Q.Q5_K: 0.06, Q.Q6_K: 0.03}
    for qt in (Q.Q4_K, Q.Q5_K, Q.Q6_K):
        raw = np.fromfile(os.path.join(d, qt.name + ".bin"), dtype=np.uint8).reshape(src.shape[0], -1)
        ours = np.fromfile(os.path.join(d, qt.name + ".f32"), dtype=np.float32).reshape(src.shape)
        theirs = gguf.quants.dequantize(raw, qt).astype(np.float32)
        assert theirs.shape == src.shape, (qt.name, theirs.shape)
        assert np.array_equal(theirs.view(np.uint32), ours.view(np.uint32)), \
            f"{qt.name}: gguf-py's dequantization differs from moeforge's at {np.argwhere(theirs != ours)[:5].tolist()}"
        assert np.isfinite(theirs).all(), qt.name
        for r in range(src.shape[0]):
            for half in (slice(0, row // 2), slice(row // 2, row)):
                x, y = src[r, half].astype(np.float64), theirs[r, half].astype(np.float64)
                rms = np.sqrt(np.mean(x * x))
                err = np.sqrt(np.mean((x - y) ** 2))
                limit = bound[qt] * (1 if r < 3 else 4) * rms
                # values whose scales fall below fp16's subnormals may vanish, but not grow
                vanished = rms < 1e-4 and err <= 1.01 * rms
                assert err <= limit or vanished, (qt.name, r, half, err, rms)
        print(f"{qt.name}: gguf-py dequantizes moeforge's bytes to moeforge's floats")
    print("check-kquant ok")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--check-kquant":
        check_kquant(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check(sys.argv[2])
        return
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    manifest = {}
    gen_safetensors(out, manifest)
    gen_gguf(out, manifest)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f)


if __name__ == "__main__":
    main()
