#!/usr/bin/python3
"""SAELens-layout SAE fixtures and PyTorch reference tensors for tests/unit/test_sae.c.

Writes tests/fixtures/sae/<name>/{cfg.json, sae_weights.safetensors, ref.safetensors}, one
folder per cfg shape and architecture (DESIGN §8), plus grad/ (a reference gradient of the
seed paper's SAE loss, by autograd) and bad_* folders (inputs that must be refused).

The encode/decode here follow SAELens' definitions written out by hand (Debian has no
sae_lens package): x - b_dec if apply_b_dec_to_input; W_enc, + b_enc; ReLU / JumpReLU with
pre > threshold strictly / TopK of the pre-activations, ReLU'ed; decode f*scaling W_dec + b_dec.
safetensors is written by hand too (8-byte length, JSON header, raw little-endian data).
Deterministic: torch.manual_seed(1234). Rerun with `make refs`.
"""
import json
import os
import shutil
import struct

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "sae")
DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64"}


def write_st(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        t = t.contiguous()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[name] = {"dtype": DT[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def encode(p, x, arch, apply_b_dec, k=None):
    xin = x - p["b_dec"] if apply_b_dec else x
    pre = xin @ p["W_enc"] + p["b_enc"]
    if arch == "standard":
        return torch.relu(pre)
    if arch == "jumprelu":
        return torch.where(pre > p["threshold"], pre, torch.zeros_like(pre))
    if arch == "topk":
        v, i = torch.topk(pre, k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, i, torch.relu(v))
    raise ValueError(arch)


def decode(p, f):
    if "scaling_factor" in p:
        f = f * p["scaling_factor"]
    return f @ p["W_dec"] + p["b_dec"]


def make(name, cfg, arch, d_in, d_sae, apply_b_dec=True, k=None, dtype=torch.float32,
         threshold=None, log_threshold=False, scaling=None, n=12):
    d = os.path.join(ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    p = {
        "W_enc": torch.randn(d_in, d_sae) / d_in ** 0.5,
        "b_enc": torch.randn(d_sae) * 0.1,
        "W_dec": torch.randn(d_sae, d_in) / d_sae ** 0.5,
        "b_dec": torch.randn(d_in) * 0.2,
    }
    if arch == "jumprelu":
        p["threshold"] = torch.rand(d_sae) * 0.5 + 0.05
    if scaling is not None:
        p["scaling_factor"] = scaling(d_sae)
    # what is stored, in the stored dtype; the reference uses the same rounded values in f32
    stored = {kk: v.to(dtype) for kk, v in p.items()}
    if log_threshold:
        stored["log_threshold"] = torch.log(p["threshold"]).to(dtype)
        del stored["threshold"]
        p["threshold"] = torch.exp(stored["log_threshold"].float())
    ref = {kk: v.float() for kk, v in stored.items() if kk != "log_threshold"}
    if log_threshold:
        ref["threshold"] = p["threshold"]
    x = torch.randn(n, d_in) * 1.5
    f = encode(ref, x, arch, apply_b_dec, k)
    xh = decode(ref, f)
    write_st(os.path.join(d, "sae_weights.safetensors"), stored, {"format": "pt"})
    with open(os.path.join(d, "cfg.json"), "w") as fh:
        json.dump(cfg, fh, indent=2)
    write_st(os.path.join(d, "ref.safetensors"), {"x": x, "f": f, "x_hat": xh})


def grad_fixture():
    """The seed paper's loss: mean_b ||x - x_hat||^2 + l1 * mean_b sum_i f_i ||W_dec,i||."""
    d = os.path.join(ROOT, "grad")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    d_in, d_sae, B, lam = 8, 24, 6, 0.7
    W_enc = (torch.randn(d_in, d_sae) / 3).requires_grad_()
    b_enc = (torch.randn(d_sae) * 0.2).requires_grad_()
    W_dec = (torch.randn(d_sae, d_in) / 3).requires_grad_()
    b_dec = (torch.randn(d_in) * 0.3).requires_grad_()
    x = torch.randn(B, d_in)
    f = torch.relu((x - b_dec) @ W_enc + b_enc)
    xh = f @ W_dec + b_dec
    mse = ((x - xh) ** 2).sum(-1).mean()
    l1 = (f * W_dec.norm(dim=1)).sum(-1).mean()
    loss = mse + lam * l1
    loss.backward()
    cfg = {"d_in": d_in, "d_sae": d_sae, "architecture": "standard", "dtype": "float32",
           "apply_b_dec_to_input": True, "normalize_activations": "none",
           "hook_name": "blocks.0.hook_resid_post", "hook_layer": 0, "model_name": "test"}
    write_st(os.path.join(d, "sae_weights.safetensors"),
             {"W_enc": W_enc.detach(), "b_enc": b_enc.detach(), "W_dec": W_dec.detach(),
              "b_dec": b_dec.detach()})
    with open(os.path.join(d, "cfg.json"), "w") as fh:
        json.dump(cfg, fh, indent=2)
    write_st(os.path.join(d, "ref.safetensors"),
             {"x": x, "lambda": torch.tensor([lam]), "loss": torch.tensor([loss.item()]),
              "mse": torch.tensor([mse.item()]), "l1": torch.tensor([l1.item()]),
              "dW_enc": W_enc.grad, "db_enc": b_enc.grad, "dW_dec": W_dec.grad,
              "db_dec": b_dec.grad})


def bad_fixtures():
    good = os.path.join(ROOT, "std_flat")
    # cfg.json says d_sae 40 but the weights hold 32 latents
    d = os.path.join(ROOT, "bad_shape")
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(good, d)
    os.remove(os.path.join(d, "ref.safetensors"))
    cfg = json.load(open(os.path.join(d, "cfg.json")))
    cfg["d_sae"] = 40
    json.dump(cfg, open(os.path.join(d, "cfg.json"), "w"), indent=2)
    # a NaN in W_dec
    d = os.path.join(ROOT, "bad_nan")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    shutil.copy(os.path.join(good, "cfg.json"), d)
    W_dec = torch.randn(32, 16)
    W_dec[3, 5] = float("nan")
    write_st(os.path.join(d, "sae_weights.safetensors"),
             {"W_enc": torch.randn(16, 32), "b_enc": torch.zeros(32), "W_dec": W_dec,
              "b_dec": torch.zeros(16)})


def main():
    torch.manual_seed(1234)
    os.makedirs(ROOT, exist_ok=True)
    # flat cfg (SAELens < 6), standard ReLU, dtype written torch.float32
    make("std_flat", {"d_in": 16, "d_sae": 32, "architecture": "standard",
                      "dtype": "torch.float32", "apply_b_dec_to_input": True,
                      "normalize_activations": "none", "hook_name": "blocks.2.hook_resid_post",
                      "hook_layer": 2, "model_name": "stories260K", "context_size": 128,
                      "prepend_bos": True}, "standard", 16, 32)
    # 6.0+ nested metadata, JumpReLU (Gemma Scope style: apply_b_dec_to_input false)
    make("jumprelu_nested", {"d_in": 16, "d_sae": 40, "dtype": "float32",
                             "apply_b_dec_to_input": False, "normalize_activations": "none",
                             "architecture": "jumprelu",
                             "metadata": {"hook_name": "blocks.3.hook_resid_post",
                                          "hook_layer": 3, "model_name": "gemma-2-2b"}},
         "jumprelu", 16, 40, apply_b_dec=False)
    # "meta" nesting, JumpReLU stored as log_threshold in bfloat16
    make("jumprelu_meta_bf16", {"d_in": 12, "d_sae": 24, "dtype": "bfloat16",
                                "apply_b_dec_to_input": True, "normalize_activations": "none",
                                "architecture": "jumprelu",
                                "meta": {"hook_name": "blocks.1.hook_resid_pre",
                                         "hook_layer": 1, "model_name": "x"}},
         "jumprelu", 12, 24, dtype=torch.bfloat16, log_threshold=True)
    # oldest flat keys (hook_point*), no apply_b_dec_to_input (means true), bool
    # normalize_activations false, TopK with k in activation_fn_kwargs, float16 weights
    make("topk_oldest_f16", {"d_in": 16, "d_sae": 48, "architecture": "topk",
                             "activation_fn_kwargs": {"k": 5}, "dtype": "float16",
                             "normalize_activations": False, "hook_point": "blocks.0.hook_resid_pre",
                             "hook_point_layer": 0, "hook_point_head_index": None,
                             "model_name": "gpt2"}, "topk", 16, 48, k=5, dtype=torch.float16)
    # 6.0 topk with k on top, and a non-trivial scaling_factor
    make("topk_k_scaling", {"d_in": 10, "d_sae": 30, "architecture": "topk", "k": 3,
                            "dtype": "float32", "apply_b_dec_to_input": True,
                            "normalize_activations": "none",
                            "metadata": {"hook_name": "blocks.0.hook_resid_post"}},
         "topk", 10, 30, k=3, scaling=lambda s: torch.rand(s) + 0.5)
    # an old standard SAE with scaling_factor all ones (ignored)
    make("std_scaling_ones", {"d_in": 8, "d_sae": 16, "hook_point": "blocks.1.hook_resid_post",
                              "hook_point_layer": 1, "dtype": "float32"},
         "standard", 8, 16, scaling=lambda s: torch.ones(s))
    grad_fixture()
    bad_fixtures()


if __name__ == "__main__":
    main()
