#!/usr/bin/python3
"""Direct logit effects of SAE decoder rows, computed with PyTorch from the files themselves
(not evalrun's reading of them), for tests/cli/logit_effects.sh. Debian's python3-torch.

  sae DIR D_IN D_SAE HOOK SEED [unit]   writes a SAELens SAE (cfg.json, sae_weights.safetensors),
                                        random normal weights (torch.Generator(SEED)); with
                                        `unit`, W_dec row i = e_i (D_SAE <= D_IN)
  padded SRC DST NTOK VP                the gpt2 fixture SRC rewritten to a vocabulary of VP ids
                                        over a tokenizer of NTOK: the padded embedding rows are
                                        +-40 e_j, so they would win every logit-effect list
  check MODEL SAE DB LAYER KIND N       compares the feature_logits rows of DB (index --logits N)
                                        with W_dec . W_O[LAYER]^T . W_U^T (KIND z) or
                                        W_dec . W_U^T (KIND resid), over the first NTOK ids when
                                        the tokenizer is smaller than the vocabulary; prints what
                                        differs and exits 1
The effects are float64 on the stored weights; evalrun's must match within 1e-4 of the largest
|effect| and list the same tokens (a swap of two effects closer than that is allowed).
"""
import json
import os
import shutil
import sqlite3
import struct
import sys

import torch

DT = {"F32": torch.float32, "F16": torch.float16, "F64": torch.float64}


def st_read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    hdr = json.loads(b[8:8 + n])
    base = 8 + n
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        lo, hi = v["data_offsets"]
        raw = bytearray(b[base + lo:base + hi])
        if v["dtype"] == "BF16":
            t = torch.frombuffer(raw, dtype=torch.int16).to(torch.int32) << 16
            t = t.view(torch.float32)
        else:
            t = torch.frombuffer(raw, dtype=DT[v["dtype"]]) if raw else torch.zeros(0)
        out[k] = t.reshape(v["shape"]).to(torch.float64)
    return out


def st_write(path, tensors):
    hdr, blobs, off = {}, [], 0
    for k, t in tensors.items():
        data = t.to(torch.float32).contiguous().numpy().tobytes()
        hdr[k] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def model_weights(folder):
    w = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".safetensors") and f != "ref.safetensors":
            w.update(st_read(os.path.join(folder, f)))
    return {k[len("transformer."):] if k.startswith("transformer.") else k: v for k, v in w.items()}


def unembedding(w):
    for k in ("lm_head.weight", "embed_out.weight"):
        if k in w:
            return w[k]
    for k in ("model.embed_tokens.weight", "wte.weight", "gpt_neox.embed_in.weight"):
        if k in w:
            return w[k]
    raise SystemExit("no unembedding")


def w_o(w, layer):
    """(C, NH*HS): z . W_O^T is what attention adds before its bias."""
    for k in (f"model.layers.{layer}.self_attn.o_proj.weight",
              f"gpt_neox.layers.{layer}.attention.dense.weight"):
        if k in w:
            return w[k]
    return w[f"h.{layer}.attn.c_proj.weight"].T  # GPT-2's Conv1D is [in, out]


def cmd_sae(d, d_in, d_sae, hook, seed, unit=False):
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(d_sae, d_in, generator=g, dtype=torch.float64)
    if unit:
        W_dec = torch.eye(d_sae, d_in, dtype=torch.float64)
    os.makedirs(d, exist_ok=True)
    st_write(os.path.join(d, "sae_weights.safetensors"), {
        "W_enc": W_dec.T.clone() * 0.5, "b_enc": torch.zeros(d_sae),
        "W_dec": W_dec, "b_dec": torch.zeros(d_in)})
    layer = int(hook.split(".")[1])
    json.dump({"architecture": "standard", "d_in": d_in, "d_sae": d_sae, "dtype": "float32",
               "apply_b_dec_to_input": True, "normalize_activations": "none",
               "metadata": {"hook_name": hook, "hook_layer": layer, "model_name": "fixture",
                            "model_from_pretrained_kwargs": {"center_writing_weights": False}}},
              open(os.path.join(d, "cfg.json"), "w"), indent=2)


def cfg_vocab(folder):
    return json.load(open(os.path.join(folder, "config.json")))["vocab_size"]


def n_tokens(folder):
    """One past the largest token id of tokenizer.json (vocabulary and added tokens)."""
    tok = json.load(open(os.path.join(folder, "tokenizer.json")))
    ids = list(tok["model"]["vocab"].values()) + [a["id"] for a in tok.get("added_tokens") or []]
    return max(ids) + 1


def cmd_padded(src, dst, ntok, vp):
    os.makedirs(dst, exist_ok=True)
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg["vocab_size"] = vp
    json.dump(cfg, open(os.path.join(dst, "config.json"), "w"))
    tok = json.load(open(os.path.join(src, "tokenizer.json")))
    v = tok["model"]["vocab"]
    for i in range(cfg_vocab(src), ntok):
        v[f"<extra_{i}>"] = i
    json.dump(tok, open(os.path.join(dst, "tokenizer.json"), "w"))
    w = st_read(os.path.join(src, "model.safetensors"))
    wte = w["wte.weight"]
    C = wte.shape[1]
    pad = torch.zeros(vp - wte.shape[0], C, dtype=torch.float64)
    for i in range(ntok, vp):
        k = i - ntok
        pad[i - wte.shape[0], (k // 2) % C] = -40.0 if k & 1 else 40.0
    w["wte.weight"] = torch.cat([wte, pad])
    st_write(os.path.join(dst, "model.safetensors"), w)


def cmd_check(model, sae, db, layer, kind, n):
    w = model_weights(model)
    W_U = unembedding(w)
    ntok = min(n_tokens(model), W_U.shape[0])
    W_dec = st_read(os.path.join(sae, "sae_weights.safetensors"))["W_dec"]
    dirs = W_dec @ w_o(w, layer).T if kind == "z" else W_dec
    eff = (dirs @ W_U.T)[:, :ntok]  # (d_sae, ntok): padded ids are no tokens
    rows = sqlite3.connect(db).execute(
        "SELECT idx, sign, rank, token, effect FROM feature_logits ORDER BY idx, sign, rank").fetchall()
    got = {}
    for idx, sign, rank, tok, e in rows:
        got.setdefault((idx, sign), []).append((tok, e))
    bad = []
    if len(got) != 2 * eff.shape[0]:
        bad.append(f"{len(got)} (feature, sign) lists stored, {2 * eff.shape[0]} expected")
    tol = 1e-4 * float(eff.abs().max())
    worst = 0.0
    for (idx, sign), lst in sorted(got.items()):
        if len(lst) != n:
            bad.append(f"feature {idx} sign {sign}: {len(lst)} tokens, {n} expected")
        e = eff[idx] * sign
        want = torch.sort(e, descending=True, stable=True)
        for r, (tok, v) in enumerate(lst):
            if not 0 <= tok < ntok:
                bad.append(f"feature {idx} sign {sign} rank {r}: id {tok} is not a token (< {ntok})")
                break
            worst = max(worst, abs(v - float(eff[idx, tok])))
            if abs(v - float(eff[idx, tok])) > tol:
                bad.append(f"feature {idx} token {tok}: effect {v}, PyTorch {float(eff[idx, tok])}")
                break
            if abs(float(e[tok]) - float(want.values[r])) > tol:
                bad.append(f"feature {idx} sign {sign} rank {r}: token {tok}, PyTorch's is "
                           f"{int(want.indices[r])} ({float(want.values[r])} vs {float(e[tok])})")
                break
    if bad:
        print("; ".join(bad[:4]))
        sys.exit(1)
    print(f"{len(rows)} effects of {eff.shape[0]} features match PyTorch (max |effect| "
          f"{float(eff.abs().max()):.4g}, largest difference {worst:.2g}, tolerance {tol:.2g})")


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "sae":
        cmd_sae(a[1], int(a[2]), int(a[3]), a[4], int(a[5]), len(a) > 6 and a[6] == "unit")
    elif a[0] == "padded":
        cmd_padded(a[1], a[2], int(a[3]), int(a[4]))
    elif a[0] == "check":
        cmd_check(a[1], a[2], a[3], int(a[4]), a[5], int(a[6]))
    else:
        raise SystemExit(__doc__)
