#!/usr/bin/python3
"""Independent check of `evalrun influence`'s numeric measures (issue 17.3) with PyTorch.

  influence_ref.py DB SAE_DIR [MODEL.bin]

Recomputes every row of the influence_measures table of DB from the stored generations:
the shipped stories260K read straight from its llama2.c .bin (a PyTorch forward written
here, float64, not evalrun's code), the prompt encoded by tests/refs/tok_llama2c_refs.py (a
port of run.c's encoder), the SAE's safetensors (standard architecture: f = relu((x - b_dec)
W_enc + b_enc), direction of feature i = W_dec[i]). For each row:
  loglik   = mean log p(y_t | ...) over the generated tokens, unsteered model;
  act_*    = the feature's activation at the generated positions, unsteered re-encoding;
  kl_*     = KL(unsteered || steered) per position from the first clamped position on, the
             clamp x' = x + (v - f_i(x)) W_dec[i] at the SAE's hook (error term kept), v the
             stored clamp value, the BOS left alone unless the run's config says clamp_bos.
Prints one line per mismatch and a summary; exits 1 on any mismatch (tolerances: 2e-3
absolute on log-likelihoods and activations, 2e-3 + 1e-3 relative on KL).
"""
import json
import math
import os
import sqlite3
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import tok_llama2c_refs as tokref  # noqa: E402


def load_llama2c(path):
    with open(path, "rb") as f:
        data = f.read()
    C, H, L, NH, NKV, V, T = struct.unpack_from("<7i", data, 0)
    shared = V > 0
    V = abs(V)
    w = np.frombuffer(data, dtype="<f4", offset=28).astype(np.float64)
    HS, KV = C // NH, (C // NH) * NKV
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        a = torch.from_numpy(w[off:off + n].copy()).reshape(*shape)
        off += n
        return a

    m = dict(C=C, H=H, L=L, NH=NH, NKV=NKV, V=V, HS=HS)
    m["emb"] = take(V, C)
    m["rms1"] = take(L, C)
    m["wq"] = take(L, C, C)
    m["wk"] = take(L, KV, C)
    m["wv"] = take(L, KV, C)
    m["wo"] = take(L, C, C)
    m["rms2"] = take(L, C)
    m["w1"] = take(L, H, C)
    m["w2"] = take(L, C, H)
    m["w3"] = take(L, H, C)
    m["rmsf"] = take(C)
    off += T * HS // 2 * 2  # freq_cis_real, freq_cis_imag (unused: recomputed)
    m["cls"] = m["emb"] if shared else take(V, C)
    return m


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w


def rope(x):  # x (NH, T, HS), llama2.c's interleaved pairs
    HS, T = x.shape[-1], x.shape[1]
    inv = 1.0 / (10000.0 ** (torch.arange(0, HS, 2, dtype=torch.float64) / HS))
    ang = torch.outer(torch.arange(T, dtype=torch.float64), inv)
    cos, sin = torch.cos(ang), torch.sin(ang)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out


def forward(m, tok, hook_layer, edit=None):
    """Logits (T, V); edit(x) -> x' applied to the residual after block hook_layer."""
    T, NH, NKV, HS = len(tok), m["NH"], m["NKV"], m["HS"]
    x = m["emb"][torch.tensor(tok)]
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    for l in range(m["L"]):
        h = rms(x, m["rms1"][l])
        q = rope((h @ m["wq"][l].T).view(T, NH, HS).transpose(0, 1))
        k = rope((h @ m["wk"][l].T).view(T, NKV, HS).transpose(0, 1))
        v = (h @ m["wv"][l].T).view(T, NKV, HS).transpose(0, 1)
        k = k.repeat_interleave(NH // NKV, 0)
        v = v.repeat_interleave(NH // NKV, 0)
        s = (q @ k.transpose(1, 2)) / math.sqrt(HS)
        s = s.masked_fill(~mask, float("-inf"))
        a = (torch.softmax(s, -1) @ v).transpose(0, 1).reshape(T, NH * HS)
        x = x + a @ m["wo"][l].T
        h = rms(x, m["rms2"][l])
        x = x + (F.silu(h @ m["w1"][l].T) * (h @ m["w3"][l].T)) @ m["w2"][l].T
        if l == hook_layer:
            m["_resid"] = x.clone()
            if edit is not None:
                x = edit(x)
    return rms(x, m["rmsf"]) @ m["cls"].T


def load_sae(folder):
    with open(os.path.join(folder, "cfg.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(folder, "sae_weights.safetensors"), "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    hdr = json.loads(data[8:8 + n])
    t = {}
    for name, d in hdr.items():
        if name == "__metadata__":
            continue
        assert d["dtype"] == "F32", d["dtype"]
        a, b = d["data_offsets"]
        t[name] = torch.from_numpy(
            np.frombuffer(data[8 + n + a:8 + n + b], dtype="<f4").astype(np.float64).copy()
        ).reshape(d["shape"])
    assert cfg.get("architecture", "standard") == "standard", cfg.get("architecture")
    return cfg, t


def encode_sae(cfg, t, x):
    xin = x - t["b_dec"] if cfg.get("apply_b_dec_to_input", True) else x
    return torch.relu(xin @ t["W_enc"] + t["b_enc"])


def main():
    db, sae_dir = sys.argv[1], sys.argv[2]
    model = sys.argv[3] if len(sys.argv) > 3 else os.path.join(
        ROOT, "evals/models/stories260K/stories260K.bin")
    m = load_llama2c(model)
    _, vocab, scores = tokref.load(os.path.join(os.path.dirname(model), "tok512.bin"))
    cfg, t = load_sae(sae_dir)
    layer = int(cfg["hook_name"].split(".")[1])
    assert cfg["hook_name"].endswith("hook_resid_post"), cfg["hook_name"]
    con = sqlite3.connect(db)
    gens = {}
    for run, key, prompt, tokens, clamp in con.execute(
            "SELECT run_id, item_key, prompt, tokens, clamp_value FROM generations"):
        gens[(run, key)] = (prompt, list(struct.unpack("<%di" % (len(tokens) // 4), tokens)),
                            clamp)
    clamp_bos = {r: bool(json.loads(c).get("clamp_bos", False))
                 for r, c in con.execute("SELECT id, config_json FROM runs")}
    rows = con.execute("SELECT run_id, item_key, gen_key, feature_idx, scale, loglik, act_mean, "
                       "act_max, kl_mean, kl_max, n_kl FROM influence_measures").fetchall()
    bad, worst = 0, {"loglik": 0.0, "act": 0.0, "kl": 0.0}
    for run, key, gkey, fi, scale, ll, am, ax, klm, klx, nkl in rows:
        prompt, gen, clamp = gens[(run, gkey)]
        ids = tokref.encode(vocab, scores, prompt, True)
        seq, npr = ids + gen, len(ids)
        with torch.no_grad():
            lu = forward(m, seq, layer)
            f = encode_sae(cfg, t, m["_resid"])
            lp = torch.log_softmax(lu, -1)
            r_ll = float(sum(lp[i - 1, seq[i]] for i in range(npr, len(seq))) / (len(seq) - npr))
            acts = f[npr:, fi]
            r_am, r_ax = float(acts.mean()), float(acts.max())
            got = {"loglik": (ll, r_ll), "act": (am, r_am), "act_max": (ax, r_ax)}
            if scale is not None:
                start = 0 if clamp_bos[run] or seq[0] != 1 else 1

                def edit(x):
                    fx = encode_sae(cfg, t, x)
                    x = x.clone()
                    x[start:] += (clamp - fx[start:, fi:fi + 1]) * t["W_dec"][fi]
                    return x

                ls = forward(m, seq, layer, edit)
                kl = (lp.exp() * (lp - torch.log_softmax(ls, -1))).sum(-1)[start:]
                got["kl"] = (klm, float(kl.mean()))
                got["kl_max"] = (klx, float(kl.max()))
                if nkl != len(seq) - start:
                    print(f"{key}: n_kl {nkl}, expected {len(seq) - start}")
                    bad += 1
        for name, (a, b) in got.items():
            tol = 2e-3 + (1e-3 * abs(b) if name.startswith("kl") else 0)
            d = abs(a - b)
            worst[name.split("_")[0] if name != "act_max" else "act"] = max(
                worst[name.split("_")[0] if name != "act_max" else "act"], d)
            if not d <= tol:
                print(f"run {run} {key}: {name} {a:.6f}, reference {b:.6f}")
                bad += 1
    print(f"influence_ref: {len(rows)} rows, {bad} mismatches; max |diff| loglik "
          f"{worst['loglik']:.2e}, act {worst['act']:.2e}, KL {worst['kl']:.2e}")
    sys.exit(1 if bad or not rows else 0)


if __name__ == "__main__":
    main()
