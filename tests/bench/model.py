#!/usr/bin/python3
"""PyTorch side of the model benchmark (tests/bench/run.sh): prefill and decode tokens/s for
the same shapes as `evalrun bench model`, on CPU, with torch.set_num_threads(N).

  model.py --shape stories260K|gpt2-small --prompt-len T --decode N --reps R --threads K

Prints one line in the same format as evalrun's:
  LABEL  prefill_T=T  prefill_tok_s=X  decode_n=N  decode_tok_s=Y
Prefill = one forward over T tokens giving logits at every position (as evalrun computes);
decode = N single-token steps with a KV cache after that prefill. Weights are random (the
time does not depend on their values); eager mode, float32, torch.no_grad().
"""
import argparse
import math
import time

import torch
import torch.nn.functional as F

SHAPES = {
    # dim, hidden, layers, heads, kv_heads, vocab, arch
    "stories260K": (64, 172, 5, 8, 4, 512, "llama"),
    "gpt2-small": (768, 3072, 12, 12, 12, 50257, "gpt2"),
}


def make(shape, seed=1):
    C, H, L, NH, NKV, V, arch = SHAPES[shape]
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.02
    HS = C // NH
    layers = []
    for _ in range(L):
        d = dict(wq=r(NH * HS, C), wk=r(NKV * HS, C), wv=r(NKV * HS, C), wo=r(C, NH * HS),
                 n1=torch.ones(C), n2=torch.ones(C), w1=r(H, C), w2=r(C, H))
        if arch == "llama":
            d["w3"] = r(H, C)
        else:
            d.update(bq=r(NH * HS), bk=r(C), bv=r(C), bo=r(C), b1=r(H), b2=r(C),
                     nb1=torch.zeros(C), nb2=torch.zeros(C))
        layers.append(d)
    m = dict(arch=arch, C=C, H=H, L=L, NH=NH, NKV=NKV, HS=HS, V=V, emb=r(V, C),
             pos=r(1024, C) if arch == "gpt2" else None, nf=torch.ones(C),
             nfb=torch.zeros(C), layers=layers)
    half = HS // 2
    inv = 1.0 / (10000.0 ** (torch.arange(0, HS, 2).float() / HS))
    ang = torch.outer(torch.arange(1024).float(), inv)
    m["cos"], m["sin"] = torch.cos(ang), torch.sin(ang)
    return m


def rope(x, cos, sin):  # x (NH, T, HS), interleaved pairs as llama2.c
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out


def norm(m, x, w, b):
    if m["arch"] == "gpt2":
        return F.layer_norm(x, (m["C"],), w, b, 1e-5)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w


def forward(m, tok, pos0, cache):
    """tok (T,) at positions pos0..; cache: list of (k, v) per layer, each (NKV, Tmax, HS)."""
    T, C, NH, NKV, HS = tok.shape[0], m["C"], m["NH"], m["NKV"], m["HS"]
    x = m["emb"][tok]
    if m["pos"] is not None:
        x = x + m["pos"][pos0:pos0 + T]
    gpt2 = m["arch"] == "gpt2"
    for l, d in enumerate(m["layers"]):
        h = norm(m, x, d["n1"], d.get("nb1"))
        q = F.linear(h, d["wq"], d.get("bq")).view(T, NH, HS).transpose(0, 1)
        k = F.linear(h, d["wk"], d.get("bk")).view(T, NKV, HS).transpose(0, 1)
        v = F.linear(h, d["wv"], d.get("bv")).view(T, NKV, HS).transpose(0, 1)
        if not gpt2:
            cos, sin = m["cos"][pos0:pos0 + T], m["sin"][pos0:pos0 + T]
            q, k = rope(q, cos, sin), rope(k, cos, sin)
        kc, vc = cache[l]
        kc[:, pos0:pos0 + T] = k
        vc[:, pos0:pos0 + T] = v
        K, Vv = kc[:, :pos0 + T], vc[:, :pos0 + T]
        if NKV != NH:
            K = K.repeat_interleave(NH // NKV, 0)
            Vv = Vv.repeat_interleave(NH // NKV, 0)
        # torch 1.13 (Debian) has no scaled_dot_product_attention: the textbook form
        s = torch.matmul(q, K.transpose(1, 2)) / math.sqrt(HS)
        if T > 1:
            s = s.masked_fill(~torch.ones(T, pos0 + T, dtype=torch.bool).tril(pos0),
                              float("-inf"))
        a = torch.matmul(torch.softmax(s, -1), Vv)
        x = x + F.linear(a.transpose(0, 1).reshape(T, NH * HS), d["wo"], d.get("bo"))
        h = norm(m, x, d["n2"], d.get("nb2"))
        if gpt2:
            h = F.gelu(F.linear(h, d["w1"], d["b1"]), approximate="tanh")
        else:
            h = F.silu(F.linear(h, d["w1"])) * F.linear(h, d["w3"])
        x = x + F.linear(h, d["w2"], d.get("b2"))
    return F.linear(norm(m, x, m["nf"], m["nfb"]), m["emb"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    m = make(a.shape)
    T, N = a.prompt_len, a.decode
    tok = torch.randint(0, m["V"], (T + N,), generator=torch.Generator().manual_seed(1))
    cache = [(torch.zeros(m["NKV"], T + N, m["HS"]), torch.zeros(m["NKV"], T + N, m["HS"]))
             for _ in range(m["L"])]
    best_p = best_d = math.inf
    with torch.no_grad():
        forward(m, tok[:T], 0, cache)  # warm-up
        for _ in range(a.reps):
            t0 = time.perf_counter()
            forward(m, tok[:T], 0, cache)
            t1 = time.perf_counter()
            for i in range(N):
                forward(m, tok[T + i:T + i + 1], T + i, cache)
            t2 = time.perf_counter()
            best_p, best_d = min(best_p, t1 - t0), min(best_d, t2 - t1)
    print(f"torch-{a.shape}\tprefill_T={T}\tprefill_tok_s={T / best_p:.1f}\tdecode_n={N}"
          f"\tdecode_tok_s={N / best_d:.1f}\tthreads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
