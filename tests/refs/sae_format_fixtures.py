#!/usr/bin/python3
"""Dictionaries beyond SAELens residual SAEs, with PyTorch reference outputs (issue 18.3).

Writes tests/fixtures/sae/formats/<case>/ ... one folder per format and kind, each sized for
stories260K (d_model 64, 8 heads of 8: attn.hook_z is 64 wide) so that the same fixtures run
the evaluations end to end, plus ref.safetensors {x, f, y} beside the weights (x the input at
the hook read, f the latents, y the dictionary's whole output, skip term included):

  saelens_transcoder/      SAELens "transcoder": blocks.2.ln2.hook_normalized -> hook_mlp_out
  saelens_skip_transcoder/ SAELens "skip_transcoder" with W_skip (d_out, d_in):
                           blocks.2.mlp.hook_in -> blocks.2.hook_mlp_out
  saelens_jumprelu_transcoder/  "jumprelu_transcoder": blocks.1.ln2.hook_normalized -> mlp_out
  saelens_hook_z/          a standard SAE on blocks.2.attn.hook_z
  sparsify/layers.2/       sparsify SAE (TopK, BF16 weights) on the output of layers.2
  sparsify/layers.2.mlp/   sparsify transcoder (transcode, skip_connection) on layers.2.mlp
  gemma-scope-2b-pt-res/layer_2/width_64/average_l0_9/params.npz        hooks from the path
  gemma-scope-2b-pt-transcoders/layer_2/width_64/average_l0_9/params.npz (compressed npz)
  gemma-scope-2b-pt-att/layer_2/width_64/average_l0_9/params.npz    attn.hook_z, f16 + Fortran
  gemmascope_cfg/          params.npz + a cfg.json naming the hooks (hook_resid_pre)
  gemma-scope-2b-pt-transcoders/layer_1/width_64/affine_skip/params.npz  a transcoder with
                           Gemma Scope 2's affine_skip_connection A (d_in, d_out): y += x A
                           (numpy alone, its own generator: the fixtures above are unchanged)
  gemma-scope-2-270m-pt/resid_post/layer_2_width_64_l0_small/params.safetensors  Gemma Scope
                           2's format (w_enc, w_dec lower case), hooks from the path
  gemmascope2_transcoder/  params.safetensors (F16) with affine_skip_connection + a cfg.json
                           naming both hooks (numpy alone, like the one above)
  bad_*                    inputs that must be refused (see main())

The encode/decode follow each project's published definitions written out by hand:
  SAELens Transcoder: f = act(x W_enc + b_enc) (b_dec is an output bias, never subtracted);
      y = f W_dec + b_dec (+ x W_skip^T for skip_transcoder); JumpReLU: ReLU(pre) * (pre > th)
  sparsify SparseCoder: pre = ReLU((x - b_dec if not transcode else x) encoder.weight^T + bias),
      top-k of pre; y = f W_dec + b_dec (+ x W_skip^T when skip_connection)
  Gemma Scope JumpReLU: pre = x W_enc + b_enc; f = pre * (pre > threshold); y = f W_dec + b_dec
      (+ x affine_skip_connection, as Gemma Scope 2's published JumpReLUSAE.forward adds it)
Deterministic: torch.manual_seed(4321). Rerun with `make refs`.
"""
import io
import json
import os
import shutil
import struct
import zipfile

import numpy as np
import torch

from sae_fixtures import write_st

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "sae",
                    "formats")
D, S, N = 64, 64, 10


def fresh(rel):
    d = os.path.join(ROOT, rel)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def weights(d_in=D, d_sae=S, d_out=D):
    return {
        "W_enc": torch.randn(d_in, d_sae) / d_in ** 0.5,
        "b_enc": torch.randn(d_sae) * 0.1 - 0.05,
        "W_dec": torch.randn(d_sae, d_out) / d_sae ** 0.5,
        "b_dec": torch.randn(d_out) * 0.2,
    }


def ref(d, x, f, y):
    write_st(os.path.join(d, "ref.safetensors"), {"x": x, "f": f, "y": y})


def saelens_transcoder(rel, arch, hook_in, hook_out, nested):
    d = fresh(rel)
    p = weights()
    if arch == "skip_transcoder":
        p["W_skip"] = torch.randn(D, D) * 0.05
    if arch == "jumprelu_transcoder":
        p["threshold"] = torch.rand(S) * 0.3 + 0.05
    x = torch.randn(N, D) * 1.2
    pre = x @ p["W_enc"] + p["b_enc"]
    f = torch.relu(pre)
    if arch == "jumprelu_transcoder":
        f = f * (pre > p["threshold"]).float()
    y = f @ p["W_dec"] + p["b_dec"]
    if "W_skip" in p:
        y = y + x @ p["W_skip"].T
    cfg = {"architecture": arch, "d_in": D, "d_out": D, "d_sae": S, "dtype": "float32",
           "apply_b_dec_to_input": False, "normalize_activations": "none"}
    hooks = {"hook_name": hook_in, "hook_name_out": hook_out, "model_name": "stories260K"}
    if nested:
        cfg["metadata"] = hooks
    else:
        cfg.update(hooks)
    write_st(os.path.join(d, "sae_weights.safetensors"), p, {"format": "pt"})
    json.dump(cfg, open(os.path.join(d, "cfg.json"), "w"), indent=2)
    ref(d, x, f, y)


def saelens_hook_z():
    d = fresh("saelens_hook_z")
    p = weights()
    x = torch.randn(N, D)
    f = torch.relu((x - p["b_dec"]) @ p["W_enc"] + p["b_enc"])
    y = f @ p["W_dec"] + p["b_dec"]
    cfg = {"architecture": "standard", "d_in": D, "d_sae": S, "dtype": "float32",
           "apply_b_dec_to_input": True, "normalize_activations": "none",
           "metadata": {"hook_name": "blocks.2.attn.hook_z", "hook_layer": 2,
                        "hook_head_index": None, "model_name": "stories260K"}}
    write_st(os.path.join(d, "sae_weights.safetensors"), p, {"format": "pt"})
    json.dump(cfg, open(os.path.join(d, "cfg.json"), "w"), indent=2)
    ref(d, x, f, y)


def sparsify(hookpoint, transcode, skip, k, dtype):
    d = fresh(os.path.join("sparsify", hookpoint))
    enc_w = torch.randn(S, D) / D ** 0.5          # nn.Linear(d_in, num_latents).weight
    enc_b = torch.randn(S) * 0.1
    W_dec = torch.randn(S, D) / S ** 0.5
    b_dec = torch.randn(D) * 0.2
    t = {"encoder.weight": enc_w, "encoder.bias": enc_b, "W_dec": W_dec, "b_dec": b_dec}
    if skip:
        t["W_skip"] = torch.randn(D, D) * 0.05
    stored = {kk: v.to(dtype) for kk, v in t.items()}
    r = {kk: v.float() for kk, v in stored.items()}
    x = torch.randn(N, D)
    xin = x if transcode else x - r["b_dec"]
    pre = torch.relu(xin @ r["encoder.weight"].T + r["encoder.bias"])
    v, i = pre.topk(k, dim=-1)
    f = torch.zeros_like(pre).scatter(-1, i, v)
    y = f @ r["W_dec"] + r["b_dec"]
    if skip:
        y = y + x @ r["W_skip"].T
    cfg = {"activation": "topk", "expansion_factor": 32, "normalize_decoder": True,
           "num_latents": S, "k": k, "multi_topk": False, "skip_connection": skip,
           "transcode": transcode, "d_in": D}
    write_st(os.path.join(d, "sae.safetensors"), stored, {"format": "pt"})
    json.dump(cfg, open(os.path.join(d, "cfg.json"), "w"))
    ref(d, x, f, y)


def npy_bytes(a, fortran=False):
    buf = io.BytesIO()
    np.save(buf, np.asfortranarray(a) if fortran else np.ascontiguousarray(a))
    return buf.getvalue()


def gemmascope(rel, compressed=False, f16=False, fortran=False, cfg=None, extra=None):
    d = fresh(rel)
    p = weights()
    p["threshold"] = torch.rand(S) * 0.3 + 0.05
    dt = torch.float16 if f16 else torch.float32
    r = {kk: v.to(dt).float() for kk, v in p.items()}
    x = torch.randn(N, D) * 1.2
    pre = x @ r["W_enc"] + r["b_enc"]
    f = pre * (pre > r["threshold"]).float()
    y = f @ r["W_dec"] + r["b_dec"]
    arrays = {kk: v.to(dt).numpy() for kk, v in p.items()}
    if extra:
        arrays.update(extra)
    mode = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(os.path.join(d, "params.npz"), "w", mode) as z:
        for kk, a in arrays.items():
            z.writestr(kk + ".npy", npy_bytes(a, fortran and a.ndim == 2))
    if cfg:
        json.dump(cfg, open(os.path.join(d, "cfg.json"), "w"), indent=2)
    ref(d, x, f, y)
    return d


def gemmascope_affine():
    """numpy only, float64 reference on the stored float32 weights."""
    g = np.random.default_rng(18)
    d = fresh("gemma-scope-2b-pt-transcoders/layer_1/width_64/affine_skip")
    p = {"W_enc": g.standard_normal((D, S)) / D ** 0.5, "b_enc": g.standard_normal(S) * 0.1 - 0.05,
         "W_dec": g.standard_normal((S, D)) / S ** 0.5, "b_dec": g.standard_normal(D) * 0.2,
         "threshold": g.random(S) * 0.3 + 0.05,
         "affine_skip_connection": g.standard_normal((D, D)) * 0.1}
    p = {k: v.astype(np.float32) for k, v in p.items()}
    r = {k: v.astype(np.float64) for k, v in p.items()}
    x = (g.standard_normal((N, D)) * 1.2).astype(np.float32)
    pre = x.astype(np.float64) @ r["W_enc"] + r["b_enc"]
    f = pre * (pre > r["threshold"])
    y = f @ r["W_dec"] + r["b_dec"] + x.astype(np.float64) @ r["affine_skip_connection"]
    with zipfile.ZipFile(os.path.join(d, "params.npz"), "w", zipfile.ZIP_DEFLATED) as z:
        for kk, a in p.items():
            z.writestr(kk + ".npy", npy_bytes(a))
    ref(d, torch.from_numpy(x), torch.from_numpy(f.astype(np.float32)),
        torch.from_numpy(y.astype(np.float32)))
    # the same arrays on a residual SAE's path: a skip term without a transcoder is refused
    d2 = fresh("bad_npz_affine_sae/gemma-scope-2b-pt-res/layer_1/width_64/a")
    shutil.copy(os.path.join(d, "params.npz"), d2)


def st_write_np(path, arrays):
    """safetensors from numpy arrays (F32 or F16), written by hand."""
    hdr, blobs, off = {}, [], 0
    for k, a in arrays.items():
        raw = np.ascontiguousarray(a).tobytes()
        hdr[k] = {"dtype": {np.float32: "F32", np.float16: "F16"}[a.dtype.type],
                  "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def gemmascope2(rel, seed, dtype, affine, cfg=None):
    """Gemma Scope 2's params.safetensors; numpy alone, float64 reference on the stored weights."""
    g = np.random.default_rng(seed)
    d = fresh(rel)
    p = {"w_enc": g.standard_normal((D, S)) / D ** 0.5, "b_enc": g.standard_normal(S) * 0.1 - 0.05,
         "w_dec": g.standard_normal((S, D)) / S ** 0.5, "b_dec": g.standard_normal(D) * 0.2,
         "threshold": g.random(S) * 0.3 + 0.05}
    if affine:
        p["affine_skip_connection"] = g.standard_normal((D, D)) * 0.1
    p = {k: v.astype(dtype) for k, v in p.items()}
    r = {k: v.astype(np.float64) for k, v in p.items()}
    x = (g.standard_normal((N, D)) * 1.2).astype(np.float32)
    pre = x.astype(np.float64) @ r["w_enc"] + r["b_enc"]
    f = pre * (pre > r["threshold"])
    y = f @ r["w_dec"] + r["b_dec"]
    if affine:
        y = y + x.astype(np.float64) @ r["affine_skip_connection"]
    st_write_np(os.path.join(d, "params.safetensors"), p)
    if cfg:
        json.dump(cfg, open(os.path.join(d, "cfg.json"), "w"), indent=2)
    ref(d, torch.from_numpy(x), torch.from_numpy(f.astype(np.float32)),
        torch.from_numpy(y.astype(np.float32)))
    return d, p


def bad():
    # a transcoder whose cfg lacks hook_name_out
    d = fresh("bad_no_hook_out")
    shutil.copy(os.path.join(ROOT, "saelens_transcoder", "sae_weights.safetensors"), d)
    cfg = json.load(open(os.path.join(ROOT, "saelens_transcoder", "cfg.json")))
    del cfg["metadata"]["hook_name_out"]
    json.dump(cfg, open(os.path.join(d, "cfg.json"), "w"), indent=2)
    # a skip transcoder without its W_skip
    d = fresh("bad_no_w_skip")
    src = os.path.join(ROOT, "saelens_transcoder")
    shutil.copy(os.path.join(src, "sae_weights.safetensors"), d)
    cfg = json.load(open(os.path.join(src, "cfg.json")))
    cfg["architecture"] = "skip_transcoder"
    json.dump(cfg, open(os.path.join(d, "cfg.json"), "w"), indent=2)
    # sparsify groupmax (not supported)
    d = fresh("bad_groupmax/layers.2")
    src = os.path.join(ROOT, "sparsify", "layers.2")
    shutil.copy(os.path.join(src, "sae.safetensors"), d)
    cfg = json.load(open(os.path.join(src, "cfg.json")))
    cfg["activation"] = "groupmax"
    json.dump(cfg, open(os.path.join(d, "cfg.json"), "w"))
    # params.npz with a member Gemma Scope never writes
    gemmascope("bad_npz_extra/gemma-scope-2b-pt-res/layer_2/width_64/x",
               extra={"W_skip": np.zeros((D, D), np.float32)})
    os.remove(os.path.join(ROOT, "bad_npz_extra/gemma-scope-2b-pt-res/layer_2/width_64/x",
                           "ref.safetensors"))
    # params.npz without a cfg.json and no Gemma Scope path
    d = fresh("bad_npz_nohook")
    shutil.copy(os.path.join(ROOT, "gemmascope_cfg", "params.npz"), d)
    # a big-endian W_enc
    d = fresh("bad_npz_bigendian/gemma-scope-2b-pt-res/layer_2/w")
    p = weights()
    p["threshold"] = torch.rand(S)
    with zipfile.ZipFile(os.path.join(d, "params.npz"), "w") as z:
        for kk, v in p.items():
            a = v.numpy()
            z.writestr(kk + ".npy", npy_bytes(a.astype(">f4") if kk == "W_enc" else a))


def main():
    torch.manual_seed(4321)
    os.makedirs(ROOT, exist_ok=True)
    saelens_transcoder("saelens_transcoder", "transcoder", "blocks.2.ln2.hook_normalized",
                       "blocks.2.hook_mlp_out", nested=True)
    saelens_transcoder("saelens_skip_transcoder", "skip_transcoder", "blocks.2.mlp.hook_in",
                       "blocks.2.hook_mlp_out", nested=False)
    saelens_transcoder("saelens_jumprelu_transcoder", "jumprelu_transcoder",
                       "blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out", nested=True)
    saelens_hook_z()
    sparsify("layers.2", transcode=False, skip=False, k=8, dtype=torch.bfloat16)
    sparsify("layers.2.mlp", transcode=True, skip=True, k=6, dtype=torch.float32)
    gemmascope("gemma-scope-2b-pt-res/layer_2/width_64/average_l0_9")
    gemmascope("gemma-scope-2b-pt-transcoders/layer_2/width_64/average_l0_9", compressed=True)
    gemmascope("gemma-scope-2b-pt-att/layer_2/width_64/average_l0_9", f16=True, fortran=True)
    gemmascope("gemmascope_cfg", cfg={"hook_name": "blocks.3.hook_resid_pre",
                                      "model_name": "stories260K"})
    bad()
    gemmascope_affine()
    gemmascope2("gemma-scope-2-270m-pt/resid_post/layer_2_width_64_l0_small", 19, np.float32,
                affine=False)
    _, p = gemmascope2("gemmascope2_transcoder", 20, np.float16, affine=True,
                       cfg={"hook_name": "blocks.2.mlp.hook_in",
                            "hook_name_out": "blocks.2.hook_mlp_out", "model_name": "stories260K"})
    # refused: a tensor Gemma Scope 2 never writes; no cfg.json and no Gemma Scope 2 path
    d = fresh("bad_gs2_extra/gemma-scope-2-270m-pt/resid_post/layer_2_width_64_l0_small")
    st_write_np(os.path.join(d, "params.safetensors"),
                dict(p, W_skip=np.zeros((D, D), np.float16)))
    d = fresh("bad_gs2_nohook")
    st_write_np(os.path.join(d, "params.safetensors"), p)


if __name__ == "__main__":
    main()
