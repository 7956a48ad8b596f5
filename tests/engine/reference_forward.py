#!/usr/bin/python3
"""Independent numpy reference of the Llama / Mistral / Qwen2 forward pass.

Written from the Hugging Face transformers definitions (modeling_llama.py,
modeling_mistral.py, modeling_qwen2.py, modeling_rope_utils.py): RMSNorm in
float, rotate-half RoPE with default / linear / llama3 inv_freq, GQA by
repeating KV heads, optional q/k/v bias, SiLU MLP, tied lm_head. It reads the
safetensors files itself (header JSON + np.frombuffer) and dequantizes GPTQ
itself, all in float64.

As a test (see tests/engine/CMakeLists.txt) it asks the C++ tool
engine_reference_tool to write a demo model and to run a prompt through the CPU
backend in chunks over shuffled KV blocks, then compares every position's
logits with its own and fails when the max relative error exceeds 1e-4.
Exit code 77 means numpy is missing (ctest SKIP_RETURN_CODE).
"""
import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print("numpy is not available: skipping")
    sys.exit(77)

SAFETENSORS_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}


def read_safetensors(path):
    """Returns {name: float64/int array} for one .safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = blob[base + begin:base + end]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            array = bits.view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=SAFETENSORS_DTYPES[info["dtype"]])
        tensors[name] = array.reshape(info["shape"])
    return tensors


def read_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for name in files:
        tensors.update(read_safetensors(os.path.join(model_dir, name)))
    return tensors


def read_quant_config(model_dir, config):
    q = config.get("quantization_config")
    path = os.path.join(model_dir, "quantize_config.json")
    if q is None and os.path.exists(path):
        with open(path) as f:
            q = json.load(f)
    return q


def unpack(words, bits, axis):
    """Unpacks int32 words holding 32/bits values (lowest bits first) along axis."""
    pack = 32 // bits
    u = words.view(np.uint32).astype(np.uint64)
    shifts = (np.arange(pack, dtype=np.uint64) * bits)
    mask = np.uint64((1 << bits) - 1)
    if axis == 0:  # [K/pack, N] -> [K, N]
        values = (u[:, None, :] >> shifts[None, :, None]) & mask
        return values.reshape(u.shape[0] * pack, u.shape[1]).astype(np.float64)
    values = (u[:, :, None] >> shifts[None, None, :]) & mask  # [G, N/pack] -> [G, N]
    return values.reshape(u.shape[0], u.shape[1] * pack).astype(np.float64)


def gptq_weight(t, prefix, q):
    """Dense W [out, in] of a GPTQ linear layer (AutoGPTQ layout)."""
    bits = q["bits"]
    qweight = t[prefix + ".qweight"]
    values = unpack(qweight, bits, axis=0)  # [in, out]
    zeros = unpack(t[prefix + ".qzeros"], bits, axis=1)  # [groups, out]
    if q.get("checkpoint_format", "gptq") == "gptq":
        zeros = zeros + 1  # the v1 format stores zero - 1
    scales = t[prefix + ".scales"].astype(np.float64)  # [groups, out]
    in_features = values.shape[0]
    if prefix + ".g_idx" in t:
        g_idx = t[prefix + ".g_idx"].astype(np.int64)
    else:
        group = q["group_size"] if q["group_size"] != -1 else in_features
        g_idx = np.arange(in_features) // group
    w_t = scales[g_idx] * (values - zeros[g_idx])
    return w_t.T


def linear_weight(t, prefix, q):
    if prefix + ".qweight" in t:
        return gptq_weight(t, prefix, q)
    return t[prefix + ".weight"].astype(np.float64)


def rope_inv_freq(config, head_dim):
    # modeling_rope_utils: _compute_default_rope_parameters and friends.
    base = config.get("rope_theta", 10000.0)
    inv_freq = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    scaling = config.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "linear":
        inv_freq = inv_freq / scaling["factor"]
    elif kind == "llama3":
        factor = scaling["factor"]
        low_freq_factor = scaling["low_freq_factor"]
        high_freq_factor = scaling["high_freq_factor"]
        old_context_len = scaling["original_max_position_embeddings"]
        low_freq_wavelen = old_context_len / low_freq_factor
        high_freq_wavelen = old_context_len / high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        inv_freq_llama = np.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
        smoothed = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
        is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
        inv_freq = np.where(is_medium, smoothed, inv_freq_llama)
    elif kind != "default":
        raise ValueError("unsupported rope scaling " + kind)
    return inv_freq


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def rms_norm(x, weight, eps):
    variance = np.mean(x * x, axis=-1, keepdims=True)
    return weight * (x / np.sqrt(variance + eps))


def silu(x):
    return x / (1.0 + np.exp(-x))


def sliding_window_of(config):
    arch = config["architectures"][0]
    if arch.startswith("Mistral"):
        return config.get("sliding_window")
    if arch.startswith("Qwen2") and config.get("use_sliding_window"):
        return config.get("sliding_window")
    return None


def forward(model_dir, tokens):
    """Logits [len(tokens), vocab] of the prompt, every position."""
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    q = read_quant_config(model_dir, config)
    t = read_weights(model_dir)
    hidden = config["hidden_size"]
    n_heads = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads", n_heads)
    head_dim = config.get("head_dim") or hidden // n_heads
    eps = config.get("rms_norm_eps", 1e-6)
    window = sliding_window_of(config)
    n = len(tokens)

    positions = np.arange(n, dtype=np.float64)
    freqs = np.outer(positions, rope_inv_freq(config, head_dim))
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]  # [n, 1, head_dim]

    mask = np.tril(np.ones((n, n), dtype=bool))
    if window is not None:
        rows, cols = np.indices((n, n))
        mask &= cols > rows - window
    x = t["model.embed_tokens.weight"].astype(np.float64)[tokens]
    for layer in range(config["num_hidden_layers"]):
        p = "model.layers.%d." % layer
        h = rms_norm(x, t[p + "input_layernorm.weight"].astype(np.float64), eps)

        def project(name, heads):
            y = h @ linear_weight(t, p + "self_attn." + name, q).T
            if p + "self_attn." + name + ".bias" in t:
                y = y + t[p + "self_attn." + name + ".bias"].astype(np.float64)
            return y.reshape(n, heads, head_dim)

        qs, ks, vs = project("q_proj", n_heads), project("k_proj", n_kv), project("v_proj", n_kv)
        qs = qs * cos + rotate_half(qs) * sin
        ks = ks * cos + rotate_half(ks) * sin
        n_rep = n_heads // n_kv  # repeat_kv
        ks = np.repeat(ks, n_rep, axis=1)
        vs = np.repeat(vs, n_rep, axis=1)
        scores = np.einsum("qhd,khd->hqk", qs, ks) / math.sqrt(head_dim)
        scores = np.where(mask[None], scores, -np.inf)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = scores / scores.sum(axis=-1, keepdims=True)
        attn = np.einsum("hqk,khd->qhd", probs, vs).reshape(n, n_heads * head_dim)
        x = x + attn @ linear_weight(t, p + "self_attn.o_proj", q).T
        if p + "self_attn.o_proj.bias" in t:
            x = x + t[p + "self_attn.o_proj.bias"].astype(np.float64)

        h = rms_norm(x, t[p + "post_attention_layernorm.weight"].astype(np.float64), eps)
        gate = h @ linear_weight(t, p + "mlp.gate_proj", q).T
        up = h @ linear_weight(t, p + "mlp.up_proj", q).T
        x = x + (silu(gate) * up) @ linear_weight(t, p + "mlp.down_proj", q).T

    x = rms_norm(x, t["model.norm.weight"].astype(np.float64), eps)
    if "lm_head.weight" in t and not config.get("tie_word_embeddings", False):
        head = t["lm_head.weight"]
    else:
        head = t["model.embed_tokens.weight"]
    return x @ head.astype(np.float64).T


def run(cmd):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def edit_config(model_dir, changes):
    path = os.path.join(model_dir, "config.json")
    with open(path) as f:
        config = json.load(f)
    config.update(changes)
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tool", required=True, help="path of engine_reference_tool")
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--arch", default="llama", choices=["llama", "mistral", "qwen2"])
    ap.add_argument("--preset", default="tiny", choices=["tiny", "small"])
    ap.add_argument("--quant", default="", help="bits,group_size,desc_act,sym,format e.g. 8,64,0,0,gptq")
    ap.add_argument("--dense", action="store_true", help="dense weights instead of GPTQ")
    ap.add_argument("--dense-dtype", default="f16", choices=["f16", "bf16", "f32"],
                    help="dtype of embeddings, norms, lm_head and dense linears")
    ap.add_argument("--rope", default="", help="llama3 or linear: rewrite config.json's rope_scaling")
    ap.add_argument("--sliding-window", type=int, default=0)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--chunks", default="7,16,3,1", help="prefill chunk sizes, the last one repeating")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()

    model_dir = os.path.join(args.work_dir, "model")
    shutil.rmtree(args.work_dir, ignore_errors=True)
    os.makedirs(args.work_dir)
    cmd = [args.tool, "write-demo", model_dir, "--arch", args.arch, "--preset", args.preset, "--seed", str(args.seed)]
    if args.dense:
        cmd.append("--dense")
    cmd += ["--dense-dtype", args.dense_dtype]
    if args.quant:
        cmd += ["--quant", args.quant]
    run(cmd)
    if args.rope == "llama3":
        edit_config(model_dir, {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 64}})
    elif args.rope == "linear":
        edit_config(model_dir, {"rope_scaling": {"type": "linear", "factor": 2.5}})
    if args.sliding_window:
        edit_config(model_dir, {"sliding_window": args.sliding_window, "use_sliding_window": True})

    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    rng = np.random.default_rng(args.seed)
    tokens = rng.integers(0, config["vocab_size"], size=args.tokens).tolist()
    logits_path = os.path.join(args.work_dir, "logits.f32")
    run([args.tool, "logits", model_dir, logits_path, "--tokens", ",".join(map(str, tokens)), "--chunks", args.chunks])

    got = np.fromfile(logits_path, dtype=np.float32).astype(np.float64)
    expected = forward(model_dir, tokens)
    if got.size != expected.size:
        print("FAIL: the backend returned %d logits, expected %d" % (got.size, expected.size))
        return 1
    got = got.reshape(expected.shape)
    per_position = np.abs(got - expected).max(axis=1) / np.abs(expected).max(axis=1)
    error = np.abs(got - expected).max() / np.abs(expected).max()
    worst = int(per_position.argmax())
    print("max relative error %.3g (worst position %d: %.3g), logits scale %.3g" %
          (error, worst, per_position[worst], np.abs(expected).max()))
    if not np.all(np.isfinite(got)) or not error <= args.tolerance:
        print("FAIL: above the tolerance %g" % args.tolerance)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
