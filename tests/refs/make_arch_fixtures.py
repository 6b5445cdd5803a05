#!/usr/bin/python3
"""Tiny random checkpoints of the architectures beyond GPT-2 / Llama-2, with PyTorch reference
tensors (tests/fixtures/hf/{gpt_neox,gpt_neox_f16,gemma2,gemma2_bf16,gemma3_text,llama3,qwen3}).

Each forward below is written from the published architecture (Hugging Face transformers'
modeling_gpt_neox.py, modeling_gemma2.py, modeling_gemma3.py, modeling_llama.py with
rope_type "llama3", modeling_qwen3.py), in float64 on the stored (F16/BF16-rounded where the
folder is) weights, and records every TransformerLens hook:
  gpt_neox:    LayerNorm; q/k/v fused per head in query_key_value ([NH, 3, HS] rows); RoPE on
               the first int(HS * rotary_pct) dims of each head (rotate_half within them, base
               rotary_emb_base); parallel residual x + attn(ln1 x) + mlp(ln2 x); biases; exact
               (erf) GELU; untied embed_out.
  gemma2:      embeddings * sqrt(d_model); RMSNorm x * rsqrt(mean x^2 + eps) * (1 + w); norms
               before and after attention and the MLP; scores * query_pre_attn_scalar^-1/2,
               cap * tanh(s / cap) soft-capping; even layers local (key j visible to query i
               when 0 <= i - j < sliding_window); GeGLU with gelu_pytorch_tanh; final logits
               soft-capped; tied embeddings.
  gemma3_text: gemma2 without soft-capping, plus RMSNorm (1 + w) over each head of q and k
               before RoPE; layer l global when (l + 1) % sliding_window_pattern == 0; local
               layers' RoPE base rope_local_base_freq, global layers' rope_theta with linear
               rope_scaling (inv_freq / factor).
  llama3:      Llama with rope_scaling rope_type llama3 (factor, low/high_freq_factor,
               original_max_position_embeddings): low frequencies / factor, high kept, smooth
               in between (HF's _compute_llama3_parameters).
  qwen3:       Llama-style with an explicit head_dim (!= hidden / heads) and RMSNorm (w, not
               1 + w) over each head of q and k before RoPE; no biases.
TransformerLens hook conventions: hook_attn_out / hook_mlp_out are what is added to the
residual (after Gemma's post-norms); ln2.hook_normalized is the MLP norm before its scale;
mlp.hook_in (evalrun's) after it; no hook_resid_mid in a parallel block.

The checks that do not share this reading: stories260K's HF-permutation check and the finite
differences of make_hf_fixtures.py (reused here for every hook), and, in the C tests, the
runtime's own finite differences at every hook.
Run from anywhere (make refs); deterministic (fixed seeds).
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_hf_fixtures as hf  # noqa: E402  (safetensors writer, tokenizers, emit)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def rms(x, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps)


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def inv_freq_default(dim, base):
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))


def inv_freq_llama3(dim, base, rs):
    inv = inv_freq_default(dim, base)
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    low_wl, high_wl = old / low, old / high
    wl = 2 * math.pi / inv
    out = torch.where(wl > low_wl, inv / factor, inv)
    smooth = (old / wl - low) / (high - low)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wl < high_wl) & ~(wl > low_wl)
    return torch.where(medium, smoothed, out)


def rope(x, inv):
    """x: (NH, T, D) with D = 2 * len(inv); HF rotate_half."""
    T = x.shape[1]
    freqs = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return x * emb.cos() + hf.rotate_half(x) * emb.sin()


def attention(q, k, v, scale, softcap=None, window=None):
    """q: (NH, T, HS); k, v: (NH, T, HS) (kv heads already repeated) -> (T, NH * HS)."""
    T = q.shape[1]
    s = q @ k.transpose(1, 2) * scale
    if softcap:
        s = torch.tanh(s / softcap) * softcap
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    mask = j > i
    if window:
        mask = mask | (i - j >= window)
    s = s.masked_fill(mask, float("-inf")).softmax(-1)
    return (s @ v).transpose(0, 1).reshape(T, -1)


# ------------------------------------------------------------------------------------------
# GPT-NeoX (Pythia)

def neox_forward(w, cfg, ids, hooks):
    C, NH, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    HS = C // NH
    rot = int(HS * cfg["rotary_pct"])
    eps = cfg["layer_norm_eps"]
    inv = inv_freq_default(rot, cfg["rotary_emb_base"])
    T = len(ids)
    h = w["gpt_neox.embed_in.weight"][ids]
    for i in range(L):
        p = f"gpt_neox.layers.{i}."
        x = hooks(f"blocks.{i}.hook_resid_pre", h)
        a = layer_norm(x, w[p + "input_layernorm.weight"], w[p + "input_layernorm.bias"], eps)
        qkv = a @ w[p + "attention.query_key_value.weight"].T + \
            w[p + "attention.query_key_value.bias"]
        qkv = qkv.view(T, NH, 3 * HS).transpose(0, 1)  # (NH, T, 3 HS)
        q, k, v = qkv[..., :HS], qkv[..., HS:2 * HS], qkv[..., 2 * HS:]
        q = torch.cat((rope(q[..., :rot], inv), q[..., rot:]), dim=-1)
        k = torch.cat((rope(k[..., :rot], inv), k[..., rot:]), dim=-1)
        z = hooks(f"blocks.{i}.attn.hook_z", attention(q, k, v, HS ** -0.5))
        ao = hooks(f"blocks.{i}.hook_attn_out",
                   z @ w[p + "attention.dense.weight"].T + w[p + "attention.dense.bias"])
        src = x
        if not cfg["use_parallel_residual"]:
            src = hooks(f"blocks.{i}.hook_resid_mid", x + ao)
        n = hooks(f"blocks.{i}.ln2.hook_normalized", layer_norm(src, 1.0, 0.0, eps))
        m = hooks(f"blocks.{i}.mlp.hook_in", n * w[p + "post_attention_layernorm.weight"] +
                  w[p + "post_attention_layernorm.bias"])
        post = hooks(f"blocks.{i}.mlp.hook_post",
                     gelu_erf(m @ w[p + "mlp.dense_h_to_4h.weight"].T +
                              w[p + "mlp.dense_h_to_4h.bias"]))
        mo = hooks(f"blocks.{i}.hook_mlp_out", post @ w[p + "mlp.dense_4h_to_h.weight"].T +
                   w[p + "mlp.dense_4h_to_h.bias"])
        if cfg["use_parallel_residual"]:
            h = hooks(f"blocks.{i}.hook_resid_post", mo + ao + x)
        else:
            h = hooks(f"blocks.{i}.hook_resid_post", src + mo)
    h = layer_norm(h, w["gpt_neox.final_layer_norm.weight"], w["gpt_neox.final_layer_norm.bias"],
                   eps)
    return h @ w["embed_out.weight"].T


def make_neox(g, cfg):
    C, L, V, F = (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"],
                  cfg["intermediate_size"])
    r = hf.randn
    w = {"gpt_neox.embed_in.weight": r(g, V, C, std=0.5)}
    for i in range(L):
        p = f"gpt_neox.layers.{i}."
        w[p + "input_layernorm.weight"] = 1 + r(g, C, std=0.1)
        w[p + "input_layernorm.bias"] = r(g, C, std=0.1)
        w[p + "post_attention_layernorm.weight"] = 1 + r(g, C, std=0.1)
        w[p + "post_attention_layernorm.bias"] = r(g, C, std=0.1)
        w[p + "attention.query_key_value.weight"] = r(g, 3 * C, C, std=0.25)
        w[p + "attention.query_key_value.bias"] = r(g, 3 * C, std=0.1)
        w[p + "attention.dense.weight"] = r(g, C, C, std=0.15)
        w[p + "attention.dense.bias"] = r(g, C, std=0.1)
        w[p + "mlp.dense_h_to_4h.weight"] = r(g, F, C, std=0.2)
        w[p + "mlp.dense_h_to_4h.bias"] = r(g, F, std=0.1)
        w[p + "mlp.dense_4h_to_h.weight"] = r(g, C, F, std=0.15)
        w[p + "mlp.dense_4h_to_h.bias"] = r(g, C, std=0.1)
    w["gpt_neox.final_layer_norm.weight"] = 1 + r(g, C, std=0.1)
    w["gpt_neox.final_layer_norm.bias"] = r(g, C, std=0.1)
    w["embed_out.weight"] = r(g, V, C, std=0.3)
    # what real Pythia checkpoints also carry, to be ignored
    for i in range(L):
        w[f"gpt_neox.layers.{i}.attention.rotary_emb.inv_freq"] = inv_freq_default(
            int(C // cfg["num_attention_heads"] * cfg["rotary_pct"]),
            cfg["rotary_emb_base"]).float()
    return w


# ------------------------------------------------------------------------------------------
# Llama-family decoders: Gemma 2 / 3, Llama 3 (rope_scaling llama3), Qwen3

def decoder_forward(w, cfg, ids, hooks):
    mt = cfg["model_type"]
    gemma = mt.startswith("gemma")
    C, NH, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    NKV = cfg["num_key_value_heads"]
    HS = cfg.get("head_dim") or C // NH
    eps = cfg["rms_norm_eps"]
    T = len(ids)

    def norm(x, name):  # RMSNorm: Gemma's scales by (1 + w)
        return rms(x, eps) * ((1.0 + w[name]) if gemma else w[name])

    scale = cfg["query_pre_attn_scalar"] ** -0.5 if gemma else HS ** -0.5
    softcap = cfg.get("attn_logit_softcapping")
    rs = cfg.get("rope_scaling")
    inv_global = inv_freq_default(HS, cfg["rope_theta"])
    if rs and rs.get("rope_type") == "llama3":
        inv_global = inv_freq_llama3(HS, cfg["rope_theta"], rs)
    elif rs and rs.get("rope_type") == "linear":
        inv_global = inv_global / rs["factor"]
    inv_local = inv_freq_default(HS, cfg.get("rope_local_base_freq", cfg["rope_theta"]))

    h = w["model.embed_tokens.weight"][ids]
    if gemma:
        h = h * (C ** 0.5)
    for i in range(L):
        p = f"model.layers.{i}."
        if mt == "gemma2":
            local = i % 2 == 0  # HF: is_sliding = not bool(layer_idx % 2)
        elif mt == "gemma3_text":
            local = bool((i + 1) % cfg["sliding_window_pattern"])
        else:
            local = False
        x = hooks(f"blocks.{i}.hook_resid_pre", h)
        a = norm(x, p + "input_layernorm.weight")
        q = (a @ w[p + "self_attn.q_proj.weight"].T).view(T, NH, HS)
        k = (a @ w[p + "self_attn.k_proj.weight"].T).view(T, NKV, HS)
        v = (a @ w[p + "self_attn.v_proj.weight"].T).view(T, NKV, HS)
        if p + "self_attn.q_norm.weight" in w:  # Qwen3, Gemma 3: per head, before RoPE
            q = norm(q, p + "self_attn.q_norm.weight")
            k = norm(k, p + "self_attn.k_norm.weight")
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        inv = inv_local if (mt == "gemma3_text" and local) else inv_global
        q, k = rope(q, inv), rope(k, inv)
        k = k.repeat_interleave(NH // NKV, dim=0)
        v = v.repeat_interleave(NH // NKV, dim=0)
        z = hooks(f"blocks.{i}.attn.hook_z",
                  attention(q, k, v, scale, softcap, cfg["sliding_window"] if local else None))
        ao = z @ w[p + "self_attn.o_proj.weight"].T
        if gemma:
            ao = norm(ao, p + "post_attention_layernorm.weight")
        ao = hooks(f"blocks.{i}.hook_attn_out", ao)
        mid = hooks(f"blocks.{i}.hook_resid_mid", x + ao)
        n = hooks(f"blocks.{i}.ln2.hook_normalized", rms(mid, eps))
        wn = p + ("pre_feedforward_layernorm.weight" if gemma else
                  "post_attention_layernorm.weight")
        m = hooks(f"blocks.{i}.mlp.hook_in", n * ((1.0 + w[wn]) if gemma else w[wn]))
        gate = m @ w[p + "mlp.gate_proj.weight"].T
        act = gelu_tanh(gate) if gemma else torch.nn.functional.silu(gate)
        post = hooks(f"blocks.{i}.mlp.hook_post", act * (m @ w[p + "mlp.up_proj.weight"].T))
        mo = post @ w[p + "mlp.down_proj.weight"].T
        if gemma:
            mo = norm(mo, p + "post_feedforward_layernorm.weight")
        mo = hooks(f"blocks.{i}.hook_mlp_out", mo)
        h = hooks(f"blocks.{i}.hook_resid_post", mid + mo)
    h = norm(h, "model.norm.weight")
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["model.embed_tokens.weight"]
    logits = h @ head.T
    if cfg.get("final_logit_softcapping"):
        c = cfg["final_logit_softcapping"]
        logits = torch.tanh(logits / c) * c
    return logits


def make_decoder(g, cfg):
    mt = cfg["model_type"]
    gemma = mt.startswith("gemma")
    C, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    F, NH, NKV = cfg["intermediate_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    HS = cfg.get("head_dim") or C // NH
    r = hf.randn

    def nw(n):  # Gemma stores w of (1 + w)
        return r(g, n, std=0.1) if gemma else 1 + r(g, n, std=0.1)

    w = {"model.embed_tokens.weight": r(g, V, C, std=0.5 if not gemma else 0.1)}
    for i in range(L):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = nw(C)
        w[p + "self_attn.q_proj.weight"] = r(g, NH * HS, C, std=0.25)
        w[p + "self_attn.k_proj.weight"] = r(g, NKV * HS, C, std=0.25)
        w[p + "self_attn.v_proj.weight"] = r(g, NKV * HS, C, std=0.2)
        w[p + "self_attn.o_proj.weight"] = r(g, C, NH * HS, std=0.15)
        if mt in ("qwen3", "gemma3_text"):
            w[p + "self_attn.q_norm.weight"] = nw(HS)
            w[p + "self_attn.k_norm.weight"] = nw(HS)
        if gemma:
            w[p + "post_attention_layernorm.weight"] = nw(C)
            w[p + "pre_feedforward_layernorm.weight"] = nw(C)
            w[p + "post_feedforward_layernorm.weight"] = nw(C)
        else:
            w[p + "post_attention_layernorm.weight"] = nw(C)
        w[p + "mlp.gate_proj.weight"] = r(g, F, C, std=0.2)
        w[p + "mlp.up_proj.weight"] = r(g, F, C, std=0.2)
        w[p + "mlp.down_proj.weight"] = r(g, C, F, std=0.15)
    w["model.norm.weight"] = nw(C)
    if not cfg.get("tie_word_embeddings", gemma):
        w["lm_head.weight"] = r(g, V, C, std=0.3)
    return w


def main():
    T = 12
    byte_tok, Vb = hf.small_bytelevel(300, "gpt2")
    qwen_tok, Vq = hf.small_bytelevel(300, "qwen2")
    spm_tok, Vs = hf.spm_tokenizer_json(hf.TOK512)

    # ---- GPT-NeoX (Pythia-style): head 16, rotary_pct 0.25 -> 4 rotary dims
    ncfg = {"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox",
            "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 3,
            "num_attention_heads": 4, "rotary_pct": 0.25, "rotary_emb_base": 10000,
            "layer_norm_eps": 1e-5, "use_parallel_residual": True, "hidden_act": "gelu",
            "max_position_embeddings": 64, "vocab_size": Vb, "tie_word_embeddings": False,
            "bos_token_id": Vb - 1, "eos_token_id": Vb - 1}
    g = torch.Generator().manual_seed(2718)
    nw = make_neox(g, ncfg)
    ids = torch.randint(0, Vb, (T,), generator=g).tolist()
    hf.emit("gpt_neox", ncfg, nw, byte_tok, neox_forward, ids, 11, 222,
            note="parallel residual, rotary_pct 0.25, biases, erf GELU, untied embed_out")
    hf.emit("gpt_neox_f16", ncfg, nw, byte_tok, neox_forward, ids, 11, 222,
            dtype=torch.float16, note="gpt_neox's weights as F16 (as Pythia ships them)")

    # ---- Gemma 2: head_dim 16 (4 heads: 64 != hidden 48), GQA 4/2, window 5 on even layers
    gcfg = {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 48,
            "intermediate_size": 96, "num_hidden_layers": 4, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 16, "query_pre_attn_scalar": 20,
            "attn_logit_softcapping": 2.0, "final_logit_softcapping": 3.0,
            "sliding_window": 5, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "hidden_activation": "gelu_pytorch_tanh", "hidden_act": "gelu_pytorch_tanh",
            "max_position_embeddings": 64, "vocab_size": Vs, "tie_word_embeddings": True,
            "attention_bias": False, "bos_token_id": 1, "eos_token_id": 2}
    g = torch.Generator().manual_seed(31415)
    gw = make_decoder(g, gcfg)
    ids = [1] + torch.randint(3, Vs, (T - 1,), generator=g).tolist()
    hf.emit("gemma2", gcfg, gw, spm_tok, decoder_forward, ids, 40, 300,
            note="(1+w) norms, pre/post norms, soft-caps 2 / 3, window 5 on even layers")
    hf.emit("gemma2_bf16", gcfg, gw, spm_tok, decoder_forward, ids, 40, 300,
            dtype=torch.bfloat16, note="gemma2's weights as BF16")

    # ---- Gemma 3 text: q/k norms, pattern 3 (layers 2, 5 global), local base 1e4, global 1e6
    # with linear scaling 8
    g3cfg = {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
             "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 6,
             "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16,
             "query_pre_attn_scalar": 16, "attn_logit_softcapping": None,
             "final_logit_softcapping": None, "sliding_window": 4, "sliding_window_pattern": 3,
             "rope_local_base_freq": 10000.0, "rope_theta": 1000000.0,
             "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "rms_norm_eps": 1e-6,
             "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 64,
             "vocab_size": Vs, "tie_word_embeddings": True, "attention_bias": False,
             "bos_token_id": 2, "eos_token_id": 1}
    g = torch.Generator().manual_seed(16180)
    g3w = make_decoder(g, g3cfg)
    hf.emit("gemma3_text", g3cfg, g3w, spm_tok, decoder_forward, ids, 50, 123,
            note="q/k (1+w) norms, sliding pattern 3 window 4, local/global RoPE bases, linear x8")

    # ---- Llama 3.1/3.2 rope_scaling: original context 16, so that all three frequency bands
    # occur among head_dim 8's four frequencies
    lcfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
            "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
            "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 16, "rope_type": "llama3"},
            "vocab_size": Vb, "max_position_embeddings": 64, "tie_word_embeddings": True,
            "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
            "bos_token_id": Vb - 1, "eos_token_id": Vb - 1}
    g = torch.Generator().manual_seed(14142)
    lw = make_decoder(g, lcfg)
    ids = torch.randint(0, Vb, (T,), generator=g).tolist()
    hf.emit("llama3", lcfg, lw, byte_tok, decoder_forward, ids, 7, 99,
            note="rope_scaling llama3 (factor 8, low 1, high 4, original 16), tied")

    # ---- Qwen3: head_dim 16 with hidden 32 / 4 heads, q/k norms, untied
    qcfg = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 16, "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0, "vocab_size": Vq, "max_position_embeddings": 64,
            "tie_word_embeddings": False, "hidden_act": "silu", "attention_bias": False,
            "use_sliding_window": False, "bos_token_id": Vq - 1, "eos_token_id": Vq - 1}
    g = torch.Generator().manual_seed(17320)
    qw = make_decoder(g, qcfg)
    ids = torch.randint(0, Vq, (T,), generator=g).tolist()
    hf.emit("qwen3", qcfg, qw, qwen_tok, decoder_forward, ids, 5, 77,
            note="head_dim 16 != hidden / heads, q/k RMSNorm, untied lm_head")
    print("wrote the architecture fixtures", file=sys.stderr)


if __name__ == "__main__":
    main()
