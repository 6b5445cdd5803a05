#!/usr/bin/python3
"""PyTorch side of the index benchmark (tests/bench/run.sh; C side build/bench/index_bench):
the corpus pass of a feature index as it is written with PyTorch and TransformerLens - the
model run with a stop at the hook layer (TransformerLens' stop_at_layer: blocks 0..L-1, the
residual before block L), the SAE encode (relu((x - b_dec) @ W_enc + b_enc)), and per-feature
running top-k, firing counts and maxima over the corpus - on a GPT-2-small-shaped model with
random weights (tests/bench/model.py's) and a random SAE calibrated as index_bench's
(unit decoder rows, W_enc = W_dec^T, b_enc = -3 x rms of the residuals), with
torch.set_num_threads(--threads), float32, eager, torch.no_grad(). Batches of --batch
sequences per forward. Prints one tab-separated line of name=value fields; best of --reps.

  index.py --seqs N --ctx T --d-sae S --layer L --top-k K --threads N --reps R
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import make  # noqa: E402


def forward_to(m, tok, stop):
    """tok (B, T): the residual stream before block `stop` (resid_pre), (B, T, C)."""
    B, T = tok.shape
    C, NH, HS = m["C"], m["NH"], m["HS"]
    x = m["emb"][tok] + m["pos"][:T]
    mask = ~torch.ones(T, T, dtype=torch.bool).tril()
    for d in m["layers"][:stop]:
        h = F.layer_norm(x, (C,), d["n1"], d["nb1"], 1e-5)
        q = F.linear(h, d["wq"], d["bq"]).view(B, T, NH, HS).transpose(1, 2)
        k = F.linear(h, d["wk"], d["bk"]).view(B, T, NH, HS).transpose(1, 2)
        v = F.linear(h, d["wv"], d["bv"]).view(B, T, NH, HS).transpose(1, 2)
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(HS)
        s = s.masked_fill(mask, float("-inf"))
        a = torch.matmul(torch.softmax(s, -1), v).transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(a, d["wo"], d["bo"])
        h = F.layer_norm(x, (C,), d["n2"], d["nb2"], 1e-5)
        x = x + F.linear(F.gelu(F.linear(h, d["w1"], d["b1"]), approximate="tanh"), d["w2"],
                         d["b2"])
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqs", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--d-sae", type=int, default=24576)
    ap.add_argument("--layer", type=int, default=6)
    ap.add_argument("--top-k", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    m = make("gpt2-small")
    g = torch.Generator().manual_seed(2)
    tok = torch.randint(0, m["V"], (a.seqs, a.ctx), generator=g)
    D, S, K = m["C"], a.d_sae, a.top_k
    with torch.no_grad():
        W_dec = torch.randn(S, D, generator=g)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        W_enc = W_dec.t().contiguous()
        b_dec = torch.zeros(D)
        x0 = forward_to(m, tok[:1], a.layer)[0, 1:]
        b_enc = torch.full((S,), -3.0 * x0.pow(2).mean().sqrt().item())
        best = math.inf
        for _ in range(a.reps):
            t0 = time.perf_counter()
            top_v = torch.zeros(0, S)
            top_i = torch.zeros(0, S, dtype=torch.long)
            count = torch.zeros(S, dtype=torch.long)
            mx = torch.zeros(S)
            for q0 in range(0, a.seqs, a.batch):
                tb = tok[q0:q0 + a.batch]
                x = forward_to(m, tb, a.layer)[:, 1:].reshape(-1, D)  # BOS excluded
                f = torch.relu((x - b_dec) @ W_enc + b_enc)
                count += (f > 0).sum(0)
                mx = torch.maximum(mx, f.max(0).values)
                rows = torch.arange(q0 * a.ctx, (q0 + tb.shape[0]) * a.ctx).view(-1, a.ctx)
                rows = rows[:, 1:].reshape(-1, 1).expand(-1, S)
                v = torch.cat([top_v, f])
                i = torch.cat([top_i, rows])
                top_v, sel = v.topk(min(K, v.shape[0]), dim=0)
                top_i = i.gather(0, sel)
            best = min(best, time.perf_counter() - t0)
        l0 = count.sum().item() / (a.seqs * (a.ctx - 1))
    n = a.seqs * a.ctx
    print(f"impl=pytorch\tseqs={a.seqs}\tctx={a.ctx}\td_sae={S}\tl0={l0:.1f}\t"
          f"index_s={best:.3f}\tindex_tok_s={n / best:.1f}\tthreads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
