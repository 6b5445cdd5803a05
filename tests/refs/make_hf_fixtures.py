#!/usr/bin/python3
"""Tiny Hugging Face model folders and their PyTorch reference tensors (tests/fixtures/hf/).

Debian has no transformers or safetensors Python packages, so this script writes safetensors
itself (8-byte little-endian header length, JSON header, raw data) and computes the
references with hand-written PyTorch forwards that follow HF's conventions:
  gpt2:  wte + wpe, pre-LN blocks (LayerNorm eps from config), Conv1D weights [in, out]
         (y = x W + b), gelu_new (tanh), causal attention, ln_f, logits = h wte^T (tied);
  llama: RMSNorm (x * rsqrt(mean x^2 + eps) * w), rotate_half RoPE (theta from config,
         cos/sin over cat(freqs, freqs)), grouped-query attention (repeat_kv), SwiGLU
         (down(silu(gate x) * up x)), final norm, lm_head or tied embeddings; qwen2 adds
         q/k/v biases.
The forwards run in float64 on the float32 (or F16/BF16-rounded) weights, so the references
are the exact math; a float32 runtime should match them to about 1e-5.

A check that does not share this reading of the conventions: stories260K (llama2.c layout,
interleaved RoPE pairs) is converted to HF layout with the q/k row permutation of HF's
convert_llama_weights_to_hf.py, and the script asserts that the HF-convention forward on the
permuted weights equals a llama2.c-convention forward (run.c's RoPE) on the original ones.

Every folder holds config.json, model.safetensors (or shards + index), tokenizer.json and
ref.safetensors; see tests/fixtures/hf/README.md for the tensor names. Run from anywhere
(make refs); the output is deterministic (fixed seeds).
"""
import json
import math
import os
import shutil
import struct
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ASSETS = os.environ.get("ASSETS", os.path.join(ROOT, "..", "shared", "assets"))
OUT = os.path.join(ROOT, "tests", "fixtures", "hf")
GPT2_DIR = os.path.join(ROOT, "evals", "tokenizers", "gpt2")
STORIES = os.path.join(ASSETS, "models", "stories260K", "stories260K.bin")
TOK512 = os.path.join(ROOT, "tests", "fixtures", "tok", "tok512.bin")

HOOK_LAYER = 1  # gradients are taken at every hook of block 1
# Hooks (TransformerLens names; evalrun's mlp.hook_in is the MLP's actual input,
# ln2.hook_normalized * w (+ b)): hook_resid_pre, attn.hook_z, hook_attn_out, hook_resid_mid,
# ln2.hook_normalized, mlp.hook_in, mlp.hook_post, hook_mlp_out, hook_resid_post.

# ------------------------------------------------------------------------------------------
# safetensors writer

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.float64: "F64", torch.int64: "I64", torch.int32: "I32"}


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> torch tensor (written in insertion order)."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        b = tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


# ------------------------------------------------------------------------------------------
# tokenizers

def bytes_to_unicode():
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
          list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"""
                 r"""[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")


def small_bytelevel(n_merges, style):
    """A byte-level BPE tokenizer.json made of GPT-2's first 256 + n_merges tokens (GPT-2's
    merge i makes token 256 + i) and <|endoftext|> last. style 'gpt2': ByteLevel
    pre-tokenizer with use_regex and merges as "a b" strings; 'qwen2': Sequence[Split(Qwen2
    regex), ByteLevel(use_regex false)] and merges as [a, b] pairs."""
    enc = json.load(open(os.path.join(GPT2_DIR, "encoder.json"), encoding="utf-8"))
    lines = open(os.path.join(GPT2_DIR, "vocab.bpe"), encoding="utf-8").read().split("\n")[1:]
    merges = [tuple(x.split(" ")) for x in lines if x][:n_merges]
    vocab = {k: v for k, v in enc.items() if v < 256 + n_merges}
    eot = 256 + n_merges
    vocab["<|endoftext|>"] = eot
    added = [{"id": eot, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}]
    if style == "gpt2":
        pre = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
               "use_regex": True}
        mlist = [a + " " + b for a, b in merges]
    else:
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
             "use_regex": False}]}
        mlist = [[a, b] for a, b in merges]
    tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
          "normalizer": {"type": "NFC"} if style == "qwen2" else None,
          "pre_tokenizer": pre,
          "post_processor": {"type": "ByteLevel", "add_prefix_space": True,
                             "trim_offsets": False, "use_regex": True},
          "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                      "use_regex": True},
          "model": {"type": "BPE", "dropout": None, "unk_token": None,
                    "continuing_subword_prefix": "", "end_of_word_suffix": "",
                    "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                    "merges": mlist}}
    return tj, eot + 1


def read_llama2c_tokenizer(path):
    data = open(path, "rb").read()
    off, pieces, scores = 4, [], []
    while off < len(data):
        score, n = struct.unpack_from("<fi", data, off)
        pieces.append(data[off + 8: off + 8 + n].decode("utf-8"))
        scores.append(score)
        off += 8 + n
    return pieces, scores


def spm_tokenizer_json(path):
    """tok512.bin as a SentencePiece-style HF tokenizer.json, the way HF's LlamaConverter
    writes Llama-2's: pieces with "▁" for space, <unk>/<s>/</s> as special added tokens,
    byte_fallback, merges = every split of a piece into two pieces of the vocabulary, ordered
    by the merged piece's score (then the parts' ids), normalizer Prepend("▁") +
    Replace(" ", "▁"), decoder Replace/ByteFallback/Fuse/Strip."""
    pieces, scores = read_llama2c_tokenizer(path)
    names = []
    for i, p in enumerate(pieces):
        if i == 0:
            names.append("<unk>")
        elif i == 1:
            names.append("<s>")
        elif i == 2:
            names.append("</s>")
        else:
            names.append(p.replace(" ", "\u2581"))
    vocab = {}
    for i, n in enumerate(names):
        vocab.setdefault(n, i)
    merges = []
    for i, n in enumerate(names):
        if i < 3 or n.startswith("<0x"):
            continue
        for k in range(1, len(n)):
            a, b = n[:k], n[k:]
            if a in vocab and b in vocab:
                merges.append((-scores[i], vocab[a], vocab[b], a, b))
    merges.sort()
    added = [{"id": i, "content": names[i], "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True} for i in range(3)]
    tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
          "normalizer": {"type": "Sequence", "normalizers": [
              {"type": "Prepend", "prepend": "\u2581"},
              {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
          "pre_tokenizer": None,
          "post_processor": {"type": "TemplateProcessing",
                             "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                        {"Sequence": {"id": "A", "type_id": 0}}],
                             "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1],
                                                                    "tokens": ["<s>"]}}},
          "decoder": {"type": "Sequence", "decoders": [
              {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
              {"type": "ByteFallback"}, {"type": "Fuse"},
              {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
          "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                    "continuing_subword_prefix": None, "end_of_word_suffix": None,
                    "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                    "vocab": vocab, "merges": [a + " " + b for _, _, _, a, b in merges]}}
    return tj, len(names)


# ------------------------------------------------------------------------------------------
# reference forwards (float64)

def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def causal_attention(q, k, v):
    """q: (NH, T, HD), k, v: (NH, T, HD) -> (T, NH * HD)."""
    T, HD = q.shape[1], q.shape[2]
    att = q @ k.transpose(1, 2) / math.sqrt(HD)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    att = att.masked_fill(mask, float("-inf")).softmax(-1)
    return (att @ v).transpose(0, 1).reshape(T, -1)


class Hooks:
    """Collects the residual stream at each hook point and keeps its gradient."""

    def __init__(self):
        self.acts = {}

    def __call__(self, name, x):
        if x.requires_grad:
            x.retain_grad()
        self.acts[name] = x
        return x


def gpt2_forward(w, cfg, ids, hooks):
    C, NH, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    eps = cfg["layer_norm_epsilon"]
    T = len(ids)
    h = w["wte.weight"][ids] + w["wpe.weight"][:T]
    for i in range(L):
        p = f"h.{i}."
        h = hooks(f"blocks.{i}.hook_resid_pre", h)
        a = layer_norm(h, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = a @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=-1)
        q, k, v = (x.view(T, NH, C // NH).transpose(0, 1) for x in (q, k, v))
        z = hooks(f"blocks.{i}.attn.hook_z", causal_attention(q, k, v))
        y = hooks(f"blocks.{i}.hook_attn_out",
                  z @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"])
        h = hooks(f"blocks.{i}.hook_resid_mid", h + y)
        n = hooks(f"blocks.{i}.ln2.hook_normalized", layer_norm(h, 1.0, 0.0, eps))
        m = hooks(f"blocks.{i}.mlp.hook_in", n * w[p + "ln_2.weight"] + w[p + "ln_2.bias"])
        m = hooks(f"blocks.{i}.mlp.hook_post",
                  gelu_new(m @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"]))
        mo = hooks(f"blocks.{i}.hook_mlp_out",
                   m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"])
        h = hooks(f"blocks.{i}.hook_resid_post", h + mo)
    h = layer_norm(h, w["ln_f.weight"], w["ln_f.bias"], eps)
    return h @ w["wte.weight"].T


def rms_norm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope_hf(x, theta):
    """x: (NH, T, HD); HF's rotate_half convention."""
    T, HD = x.shape[1], x.shape[2]
    inv = 1.0 / (theta ** (torch.arange(0, HD, 2, dtype=torch.float64) / HD))
    freqs = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return x * emb.cos() + rotate_half(x) * emb.sin()


def rope_llama2c(x, theta):
    """x: (NH, T, HD); llama2.c run.c's convention: pairs (2j, 2j+1) rotated by
    pos * theta^(-2j/HD)."""
    T, HD = x.shape[1], x.shape[2]
    inv = 1.0 / (theta ** (torch.arange(0, HD, 2, dtype=torch.float64) / HD))
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    c, s = ang.cos(), ang.sin()
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def llama_forward(w, cfg, ids, hooks, rope=rope_hf):
    C, NH, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    NKV = cfg["num_key_value_heads"]
    HD = C // NH
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    T = len(ids)
    h = w["model.embed_tokens.weight"][ids]
    for i in range(L):
        p = f"model.layers.{i}."
        h = hooks(f"blocks.{i}.hook_resid_pre", h)
        a = rms_norm(h, w[p + "input_layernorm.weight"], eps)

        def proj(name):
            y = a @ w[p + f"self_attn.{name}.weight"].T
            if p + f"self_attn.{name}.bias" in w:
                y = y + w[p + f"self_attn.{name}.bias"]
            return y

        q = proj("q_proj").view(T, NH, HD).transpose(0, 1)
        k = proj("k_proj").view(T, NKV, HD).transpose(0, 1)
        v = proj("v_proj").view(T, NKV, HD).transpose(0, 1)
        q, k = rope(q, theta), rope(k, theta)
        k = k.repeat_interleave(NH // NKV, dim=0)  # repeat_kv
        v = v.repeat_interleave(NH // NKV, dim=0)
        z = hooks(f"blocks.{i}.attn.hook_z", causal_attention(q, k, v))
        y = hooks(f"blocks.{i}.hook_attn_out", z @ w[p + "self_attn.o_proj.weight"].T)
        h = hooks(f"blocks.{i}.hook_resid_mid", h + y)
        n = hooks(f"blocks.{i}.ln2.hook_normalized", rms_norm(h, 1.0, eps))
        m = hooks(f"blocks.{i}.mlp.hook_in", n * w[p + "post_attention_layernorm.weight"])
        g = torch.nn.functional.silu(m @ w[p + "mlp.gate_proj.weight"].T)
        u = m @ w[p + "mlp.up_proj.weight"].T
        post = hooks(f"blocks.{i}.mlp.hook_post", g * u)
        mo = hooks(f"blocks.{i}.hook_mlp_out", post @ w[p + "mlp.down_proj.weight"].T)
        h = hooks(f"blocks.{i}.hook_resid_post", h + mo)
    h = rms_norm(h, w["model.norm.weight"], eps)
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["model.embed_tokens.weight"]
    return h @ head.T


def reference(forward, weights, cfg, ids, a, b):
    """Logits, every hook's activation, loss, and d(logit[T-1, a] - logit[T-1, b]) / d(hook) at
    every hook of block HOOK_LAYER (the first of them is made a leaf; the later ones keep
    their gradients, which is the gradient with everything after the hook recomputed)."""
    w = {k: v.to(torch.float64) for k, v in weights.items()}
    hooks = Hooks()
    ids_t = torch.tensor(ids)
    with torch.enable_grad():
        # make the hooked activations part of the graph so their grads are kept
        def hk(name, x):
            if name.startswith(f"blocks.{HOOK_LAYER}.") and not x.requires_grad:
                x = x.detach().requires_grad_(True)
            return hooks(name, x)

        logits = forward(w, cfg, ids_t, hk)
        diff = logits[-1, a] - logits[-1, b]
        diff.backward()
    out = {"input_ids": torch.tensor(ids, dtype=torch.int64),
           "logit_diff_tokens": torch.tensor([a, b], dtype=torch.int64),
           "logits": logits.detach().float(),
           "logit_diff": diff.detach().float().reshape(()),
           "loss": torch.nn.functional.cross_entropy(logits[:-1], ids_t[1:]).detach().float()
           .reshape(())}
    for name, x in hooks.acts.items():
        out[name] = x.detach().float()
    for name in hooks.acts:
        if name.startswith(f"blocks.{HOOK_LAYER}."):
            out["grad." + name] = hooks.acts[name].grad.float()
    return out


def fd_check(forward, weights, cfg, ids, a, b, ref, name):
    """Central finite differences in float64 on a few coordinates of the hooked activation."""
    w = {k: v.to(torch.float64) for k, v in weights.items()}
    base = None
    width = ref[name].shape[1]
    for (t, c) in [(0, 0), (len(ids) // 2, 3 % width), (len(ids) - 1, 5 % width)]:
        def run(eps):
            def hk(hname, x):
                if hname == name:
                    x = x.clone()
                    x[t, c] += eps
                return x
            lg = forward(w, cfg, torch.tensor(ids), hk)
            return (lg[-1, a] - lg[-1, b]).item()
        e = 1e-6
        fd = (run(e) - run(-e)) / (2 * e)
        got = ref["grad." + name][t, c].item()
        assert abs(fd - got) <= 1e-5 * max(1.0, abs(fd)), (name, t, c, fd, got)
        base = fd
    return base


# ------------------------------------------------------------------------------------------
# models

def randn(g, *shape, std=1.0):
    return torch.randn(*shape, generator=g, dtype=torch.float32) * std


def make_gpt2(g, cfg):
    C, L, V, P = cfg["n_embd"], cfg["n_layer"], cfg["vocab_size"], cfg["n_positions"]
    w = {"wte.weight": randn(g, V, C, std=0.3), "wpe.weight": randn(g, P, C, std=0.1)}
    for i in range(L):
        p = f"h.{i}."
        w[p + "ln_1.weight"] = 1 + randn(g, C, std=0.1)
        w[p + "ln_1.bias"] = randn(g, C, std=0.1)
        w[p + "attn.c_attn.weight"] = randn(g, C, 3 * C, std=0.25)
        w[p + "attn.c_attn.bias"] = randn(g, 3 * C, std=0.1)
        w[p + "attn.c_proj.weight"] = randn(g, C, C, std=0.15)
        w[p + "attn.c_proj.bias"] = randn(g, C, std=0.1)
        w[p + "ln_2.weight"] = 1 + randn(g, C, std=0.1)
        w[p + "ln_2.bias"] = randn(g, C, std=0.1)
        w[p + "mlp.c_fc.weight"] = randn(g, C, 4 * C, std=0.2)
        w[p + "mlp.c_fc.bias"] = randn(g, 4 * C, std=0.1)
        w[p + "mlp.c_proj.weight"] = randn(g, 4 * C, C, std=0.1)
        w[p + "mlp.c_proj.bias"] = randn(g, C, std=0.1)
    w["ln_f.weight"] = 1 + randn(g, C, std=0.1)
    w["ln_f.bias"] = randn(g, C, std=0.1)
    return w


def make_llama(g, cfg, bias=False, tied=False):
    C, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    F, NH, NKV = cfg["intermediate_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    HD = C // NH
    w = {"model.embed_tokens.weight": randn(g, V, C, std=0.5)}
    for i in range(L):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = 1 + randn(g, C, std=0.1)
        w[p + "self_attn.q_proj.weight"] = randn(g, NH * HD, C, std=0.25)
        w[p + "self_attn.k_proj.weight"] = randn(g, NKV * HD, C, std=0.25)
        w[p + "self_attn.v_proj.weight"] = randn(g, NKV * HD, C, std=0.2)
        if bias:
            w[p + "self_attn.q_proj.bias"] = randn(g, NH * HD, std=0.2)
            w[p + "self_attn.k_proj.bias"] = randn(g, NKV * HD, std=0.2)
            w[p + "self_attn.v_proj.bias"] = randn(g, NKV * HD, std=0.2)
        w[p + "self_attn.o_proj.weight"] = randn(g, C, NH * HD, std=0.15)
        w[p + "post_attention_layernorm.weight"] = 1 + randn(g, C, std=0.1)
        w[p + "mlp.gate_proj.weight"] = randn(g, F, C, std=0.2)
        w[p + "mlp.up_proj.weight"] = randn(g, F, C, std=0.2)
        w[p + "mlp.down_proj.weight"] = randn(g, C, F, std=0.15)
    w["model.norm.weight"] = 1 + randn(g, C, std=0.1)
    if not tied:
        w["lm_head.weight"] = randn(g, V, C, std=0.3)
    return w


def round_to(weights, dtype):
    return {k: v.to(dtype) for k, v in weights.items()}


def emit(folder, cfg, weights, tokenizer, forward, ids, a, b, dtype=torch.float32,
         prefix="", extra=None, shards=0, note=""):
    """Writes folder/{config.json, model.safetensors | shards + index, tokenizer.json,
    ref.safetensors}. The reference uses the weights as stored (rounded to dtype)."""
    d = os.path.join(OUT, folder)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    stored = round_to(weights, dtype)
    write_json(os.path.join(d, "config.json"), dict(cfg, torch_dtype={
        torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}[dtype]))
    write_json(os.path.join(d, "tokenizer.json"), tokenizer)
    named = {prefix + k: v for k, v in stored.items()}
    if extra:
        named.update(extra)
    if shards:
        names = list(named)
        per = (len(names) + shards - 1) // shards
        wmap, total = {}, 0
        for s in range(shards):
            fn = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: named[n] for n in names[s * per:(s + 1) * per]}
            write_safetensors(os.path.join(d, fn), part, {"format": "pt"})
            for n, t in part.items():
                wmap[n] = fn
                total += len(tensor_bytes(t))
        write_json(os.path.join(d, "model.safetensors.index.json"),
                   {"metadata": {"total_size": total}, "weight_map": wmap})
    else:
        write_safetensors(os.path.join(d, "model.safetensors"), named, {"format": "pt"})
    ref = reference(forward, {k: v.to(torch.float32) for k, v in stored.items()}, cfg, ids, a, b)
    for name in ref:
        if name.startswith("grad."):
            fd_check(forward, {k: v.to(torch.float32) for k, v in stored.items()}, cfg, ids, a,
                     b, ref, name[5:])
    write_safetensors(os.path.join(d, "ref.safetensors"), ref,
                      {"model": folder, "hook_layer": str(HOOK_LAYER), "note": note})
    return ref


def load_stories260k():
    data = open(STORIES, "rb").read()
    dim, hidden, L, NH, NKV, V, S = struct.unpack_from("<7i", data, 0)
    shared = V > 0
    V = abs(V)
    HD = dim // NH
    off = 28
    f = torch.frombuffer(bytearray(data[off:]), dtype=torch.float32)
    pos = 0

    def take(*shape):
        nonlocal pos
        n = 1
        for s in shape:
            n *= s
        t = f[pos:pos + n].clone().view(*shape)
        pos += n
        return t

    w = {"tok": take(V, dim), "rms_att": take(L, dim), "wq": take(L, dim, NH * HD),
         "wk": take(L, NKV * HD, dim), "wv": take(L, NKV * HD, dim), "wo": take(L, dim, NH * HD),
         "rms_ffn": take(L, dim), "w1": take(L, hidden, dim), "w2": take(L, dim, hidden),
         "w3": take(L, hidden, dim), "rms_final": take(dim)}
    # llama2.c stores wq as (layer, dim, n_heads * head_size) meaning out x in = (NH*HD, dim)
    w["wq"] = w["wq"].view(L, NH * HD, dim)
    w["wo"] = w["wo"].view(L, dim, NH * HD)
    pos += S * HD // 2 * 2  # legacy freq_cis_real, freq_cis_imag
    if not shared:
        w["wcls"] = take(V, dim)
    cfg = {"dim": dim, "hidden": hidden, "L": L, "NH": NH, "NKV": NKV, "V": V, "S": S,
           "shared": shared}
    return w, cfg


def permute(w, n_heads, dim1, dim2):
    """HF convert_llama_weights_to_hf.py: interleaved (Meta / llama2.c) rows to rotate_half."""
    return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)


def stories_to_hf(w, c):
    L, dim, NH, NKV = c["L"], c["dim"], c["NH"], c["NKV"]
    HD = dim // NH
    hf = {"model.embed_tokens.weight": w["tok"]}
    for i in range(L):
        p = f"model.layers.{i}."
        hf[p + "input_layernorm.weight"] = w["rms_att"][i]
        hf[p + "self_attn.q_proj.weight"] = permute(w["wq"][i], NH, NH * HD, dim)
        hf[p + "self_attn.k_proj.weight"] = permute(w["wk"][i], NKV, NKV * HD, dim)
        hf[p + "self_attn.v_proj.weight"] = w["wv"][i]
        hf[p + "self_attn.o_proj.weight"] = w["wo"][i]
        hf[p + "post_attention_layernorm.weight"] = w["rms_ffn"][i]
        hf[p + "mlp.gate_proj.weight"] = w["w1"][i]
        hf[p + "mlp.down_proj.weight"] = w["w2"][i]
        hf[p + "mlp.up_proj.weight"] = w["w3"][i]
    hf["model.norm.weight"] = w["rms_final"]
    if not c["shared"]:
        hf["lm_head.weight"] = w["wcls"]
    return hf


def stories_unpermuted(w, c):
    """The same names, llama2.c's row order (for the llama2.c-convention forward)."""
    hf = stories_to_hf(w, c)
    for i in range(c["L"]):
        p = f"model.layers.{i}."
        hf[p + "self_attn.q_proj.weight"] = w["wq"][i]
        hf[p + "self_attn.k_proj.weight"] = w["wk"][i]
    return hf


def main():
    os.makedirs(OUT, exist_ok=True)
    T = 12
    # ---- GPT-2 family
    gpt2_tok, V = small_bytelevel(300, "gpt2")
    gcfg = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 32,
            "n_layer": 3, "n_head": 4, "n_positions": 64, "n_ctx": 64, "n_inner": None,
            "vocab_size": V, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new",
            "bos_token_id": V - 1, "eos_token_id": V - 1, "tie_word_embeddings": True}
    g = torch.Generator().manual_seed(1234)
    gw = make_gpt2(g, gcfg)
    ids = torch.randint(0, V, (T,), generator=g).tolist()
    a, b = 17, 300
    # HF GPT-2 checkpoints carry the causal-mask buffers h.{i}.attn.bias; loaders ignore them
    mask = {f"h.{i}.attn.bias": torch.tril(torch.ones(64, 64)).view(1, 1, 64, 64)
            for i in range(gcfg["n_layer"])}
    emit("gpt2", gcfg, gw, gpt2_tok, gpt2_forward, ids, a, b, extra=mask,
         note="keys without prefix, plus h.{i}.attn.bias mask buffers")
    emit("gpt2_prefixed", gcfg, gw, gpt2_tok, gpt2_forward, ids, a, b, prefix="transformer.",
         note="same weights as gpt2, keys prefixed transformer.")
    emit("gpt2_bf16", gcfg, gw, gpt2_tok, gpt2_forward, ids, a, b, dtype=torch.bfloat16,
         note="gpt2's weights rounded to BF16; reference computed from the rounded weights")

    # ---- Llama family: tok512 as an SPM tokenizer.json, vocab 512
    spm_tok, V = spm_tokenizer_json(TOK512)
    lcfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
            "intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4,
            "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "vocab_size": V, "max_position_embeddings": 64, "tie_word_embeddings": False,
            "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2}
    g = torch.Generator().manual_seed(5678)
    lw = make_llama(g, lcfg)
    ids = [1] + torch.randint(3, V, (T - 1,), generator=g).tolist()
    a, b = 100, 200
    emit("llama", lcfg, lw, spm_tok, llama_forward, ids, a, b,
         note="GQA 4 heads / 2 kv heads, untied lm_head")
    emit("llama_f16", lcfg, lw, spm_tok, llama_forward, ids, a, b, dtype=torch.float16,
         note="llama's weights rounded to F16; reference computed from the rounded weights")
    emit("llama_sharded", lcfg, lw, spm_tok, llama_forward, ids, a, b, shards=2,
         note="llama's weights in two shards with model.safetensors.index.json")
    # tied embeddings and a different theta, model_type mistral
    mcfg = dict(lcfg, model_type="mistral", architectures=["MistralForCausalLM"],
                tie_word_embeddings=True, rope_theta=500000.0, num_key_value_heads=1,
                rms_norm_eps=1e-6)
    g = torch.Generator().manual_seed(91011)
    mw = make_llama(g, mcfg, tied=True)
    emit("mistral_tied", mcfg, mw, spm_tok, llama_forward, ids, a, b,
         note="tied embeddings (no lm_head.weight), 1 kv head, rope_theta 500000")

    # ---- Qwen2: q/k/v biases, byte-level tokenizer with the Qwen2 Split regex
    qwen_tok, V = small_bytelevel(300, "qwen2")
    qcfg = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
            "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
            "vocab_size": V, "max_position_embeddings": 64, "tie_word_embeddings": True,
            "hidden_act": "silu", "use_sliding_window": False, "bos_token_id": V - 1,
            "eos_token_id": V - 1}
    g = torch.Generator().manual_seed(121314)
    qw = make_llama(g, qcfg, bias=True, tied=True)
    ids = torch.randint(0, V, (T,), generator=g).tolist()
    emit("qwen2", qcfg, qw, qwen_tok, llama_forward, ids, 5, 77,
         note="q/k/v biases, tied embeddings, rope_theta 1e6")

    # ---- stories260K in HF layout (q/k rows permuted as HF's converter does)
    sw, sc = load_stories260k()
    scfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": sc["dim"], "intermediate_size": sc["hidden"],
            "num_hidden_layers": sc["L"], "num_attention_heads": sc["NH"],
            "num_key_value_heads": sc["NKV"], "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "vocab_size": sc["V"], "max_position_embeddings": sc["S"],
            "tie_word_embeddings": sc["shared"], "hidden_act": "silu", "bos_token_id": 1,
            "eos_token_id": 2}
    # "Once upon a time" under tok512 (see tests/fixtures/tok/llama2c_cases.json) + more
    ids = [1, 403, 407, 261, 378, 11, 360, 264, 261, 365, 345, 281]
    ids = ids[:T]
    ref = emit("stories260K_hf", scfg, stories_to_hf(sw, sc), spm_tok, llama_forward, ids,
               a=261, b=365, note="stories260K.bin converted with HF's permute() of q/k rows")
    # the check that does not share the HF reading: llama2.c convention on the original rows
    w2 = {k: v.to(torch.float64) for k, v in stories_unpermuted(sw, sc).items()}
    l2 = llama_forward(w2, scfg, torch.tensor(ids), lambda n, x: x, rope=rope_llama2c)
    err = (l2.float() - ref["logits"]).abs().max().item()
    assert err < 1e-4, f"stories260K: HF layout vs llama2.c layout differ by {err}"
    print(f"stories260K: HF-permuted rotate_half vs llama2.c interleaved: max |dlogit| {err:.2e}",
          file=sys.stderr)
    top = ref["logits"][4].argmax().item()
    print(f"stories260K: after 'Once upon a time' the top token is {top}", file=sys.stderr)
    total = 0
    for root, _, files in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
