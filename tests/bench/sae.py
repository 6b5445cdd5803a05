#!/usr/bin/python3
"""The PyTorch side of the SAE benchmark (`make bench`): the same SAE, loss and Adam step as
`evalrun sae-bench`, on the same kind of synthetic data (x ~ N(0, I); unit-norm decoder rows,
W_enc = W_dec^T, b_enc = -3), with torch.set_num_threads(--threads). Prints one tab-separated
line of name=value fields like the C side."""
import argparse
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d-in", type=int, default=768)
    ap.add_argument("--d-sae", type=int, default=24576)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    D, S, B = a.d_in, a.d_sae, a.batch
    W_dec = torch.randn(S, D)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    W_enc = W_dec.t().clone().requires_grad_()
    W_dec.requires_grad_()
    b_enc = torch.full((S,), -3.0, requires_grad=True)
    b_dec = torch.zeros(D, requires_grad=True)
    x = torch.randn(B, D)
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    l1 = 1.0

    def step():
        f = torch.relu((x - b_dec) @ W_enc + b_enc)
        xh = f @ W_dec + b_dec
        loss = ((x - xh) ** 2).sum(-1).mean() + l1 * (f * W_dec.norm(dim=1)).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return (f > 0).sum().item() / B

    step()
    t0 = time.perf_counter()
    l0 = 0.0
    for _ in range(a.steps):
        l0 += step()
    train_s = (time.perf_counter() - t0) / a.steps
    with torch.no_grad():
        f = torch.relu((x - b_dec) @ W_enc + b_enc)
        t0 = time.perf_counter()
        for _ in range(a.steps):
            f = torch.relu((x - b_dec) @ W_enc + b_enc)
        enc_s = (time.perf_counter() - t0) / a.steps
        nnz = (f > 0).sum().item() / B
    print(f"impl=pytorch\td_in={D}\td_sae={S}\tbatch={B}\tl0={nnz:.1f}\ttrain_l0={l0 / a.steps:.1f}\t"
          f"train_step_ms={train_s * 1e3:.2f}\ttrain_tok_s={B / train_s:.1f}\t"
          f"encode_ms={enc_s * 1e3:.2f}\tencode_tok_s={B / enc_s:.1f}")


if __name__ == "__main__":
    main()
