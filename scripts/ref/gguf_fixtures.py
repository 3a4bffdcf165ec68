#!/usr/bin/env python3
"""Reference fixtures for the GGUF reader (dev tool, not run by CI).

Writes, deterministically (seeded), under Tests/Fixtures/gguf/:
  types.gguf     one tensor per supported ggml type (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K,
                 Q6_K), each 2-D, written by gguf-py's GGUFWriter, plus `<name>.expected`: F32 tensors holding
                 `gguf.quants.dequantize` of the same bytes (the values rlif must reproduce bit for bit).
                 Types gguf-py can quantize are made with `gguf.quants.quantize`; the K-quants (which gguf-py only
                 dequantizes) get random block bytes with finite, moderate f16 scales, which exercises every bit of
                 the layout. Also one Q2_K tensor (`unsupported.q2_k`) for the unsupported-type error.
  metadata.gguf  one metadata key per GGUF value type, arrays (incl. nested and empty-typed ones), a string with
                 non-ASCII text, `general.alignment` = 64, and two tiny F32 tensors (so the aligned offsets are
                 exercised). The Swift test (GGUFMetadataTests) asserts exactly the values written here.

Usage: python3 scripts/ref/gguf_fixtures.py
"""
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "gguf")


def f16_bytes(rng, n, lo, hi):
    """n random f16 scales in [lo, hi) with random sign, as bytes (shape (n, 2))."""
    v = (rng.uniform(lo, hi, size=n) * rng.choice([-1.0, 1.0], size=n)).astype(np.float16)
    return v.view(np.uint8).reshape(n, 2)


def random_blocks(rng, qtype, n_blocks):
    """Random block bytes for a K-quant with its f16 fields set to finite scales."""
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    b = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    if qtype in (T.Q4_K, T.Q5_K):        # d, dmin at bytes 0..4 (block_q4_K / block_q5_K)
        b[:, 0:2] = f16_bytes(rng, n_blocks, 1e-3, 0.05)
        b[:, 2:4] = f16_bytes(rng, n_blocks, 1e-3, 0.05)
    elif qtype == T.Q6_K:                # d last (block_q6_K)
        b[:, type_size - 2:] = f16_bytes(rng, n_blocks, 1e-3, 0.05)
    elif qtype == T.Q2_K:                # d, dmin last (block_q2_K)
        b[:, type_size - 4:type_size - 2] = f16_bytes(rng, n_blocks, 1e-3, 0.05)
        b[:, type_size - 2:] = f16_bytes(rng, n_blocks, 1e-3, 0.05)
    return b


def types_fixture():
    rng = np.random.default_rng(20261202)
    w = gguf.GGUFWriter(os.path.join(OUT, "types.gguf"), arch="fixture")
    w.add_description("one tensor per supported ggml type + the dequantized expectation")

    # Quantizable types: (3 rows, 96) = 9 blocks of 32; values spread over a few magnitudes incl. zeros.
    x = (rng.standard_normal((3, 96)) * rng.choice([0.01, 0.3, 2.0], size=(3, 1))).astype(np.float32)
    x[1, 5:37] = 0.0          # a whole zero block (d = 0)
    x[2, 0] = 7.5             # an outlier
    for name, qt in [("f32", T.F32), ("f16", T.F16), ("bf16", T.BF16), ("q4_0", T.Q4_0), ("q4_1", T.Q4_1),
                     ("q5_0", T.Q5_0), ("q5_1", T.Q5_1), ("q8_0", T.Q8_0)]:
        q = gguf.quants.quantize(x, qt)
        expected = gguf.quants.dequantize(q, qt).astype(np.float32)
        assert expected.shape == x.shape, (name, expected.shape)
        w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qt)
        w.add_tensor(name + ".expected", np.ascontiguousarray(expected))

    # K-quants: (2 rows, 512) = 4 super-blocks of 256, random bytes.
    for name, qt in [("q4_k", T.Q4_K), ("q5_k", T.Q5_K), ("q6_k", T.Q6_K)]:
        _, ts = gguf.GGML_QUANT_SIZES[qt]
        q = random_blocks(rng, qt, 4).reshape(2, 2 * ts)
        expected = gguf.quants.dequantize(q, qt).astype(np.float32)
        assert expected.shape == (2, 512), (name, expected.shape)
        assert np.isfinite(expected).all()
        w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qt)
        w.add_tensor(name + ".expected", np.ascontiguousarray(expected))

    q2 = random_blocks(rng, T.Q2_K, 1).reshape(1, -1)
    w.add_tensor("unsupported.q2_k", q2, raw_shape=q2.shape, raw_dtype=T.Q2_K)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def metadata_fixture():
    w = gguf.GGUFWriter(os.path.join(OUT, "metadata.gguf"), arch="fixture")
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 0.1)
    w.add_uint64("t.u64", 18000000000000000000)
    w.add_int64("t.i64", -9000000000000000000)
    w.add_float64("t.f64", -2.5e-300)
    w.add_bool("t.true", True)
    w.add_bool("t.false", False)
    w.add_string("t.str", "héllo ✓ \"quoted\"\nnewline")
    w.add_key_value("t.arr.str", ["a", "", "Ġthe", "<|im_end|>"], V.ARRAY, sub_type=V.STRING)
    w.add_key_value("t.arr.i32", [1, -2, 3, 2147483647], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("t.arr.u8", [0, 255, 7], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("t.arr.f32", [0.5, -1.25, 3.0e-8], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("t.arr.bool", [True, False, True], V.ARRAY, sub_type=V.BOOL)
    w.add_key_value("t.arr.nested", [[1, 2], [3], [4, 5, 6]], V.ARRAY, sub_type=V.ARRAY)
    w.add_key_value("t.arr.nested.str", [["x", "y"], ["z"]], V.ARRAY, sub_type=V.ARRAY)
    w.add_custom_alignment(64)
    w.add_tensor("a", np.arange(3, dtype=np.float32))
    w.add_tensor("b", np.arange(6, dtype=np.float32).reshape(2, 3) * -0.5)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    types_fixture()
    metadata_fixture()
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
