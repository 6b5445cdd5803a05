#!/usr/bin/python3
"""Reference values of the SAE metrics (DESIGN §8 definitions) computed with PyTorch for
tests/unit/test_sae_metrics.c: two sequences of reconstructions and one of logits.
Writes tests/fixtures/sae/metrics/ref.safetensors. Rerun with `make refs`."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sae_fixtures import write_st  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "sae", "metrics")


def main():
    torch.manual_seed(77)
    os.makedirs(OUT, exist_ok=True)
    D, S, n1, n2, T, V = 6, 9, 7, 5, 8, 11
    x = torch.randn(n1 + n2, D, dtype=torch.float64) * 2 + 0.5
    xh = x + torch.randn(n1 + n2, D, dtype=torch.float64) * 0.4
    f = torch.relu(torch.randn(n1 + n2, S, dtype=torch.float64))
    f[:, 4] = 0  # a dead latent
    x, xh, f = x.float().double(), xh.float().double(), f.float().double()
    err = ((x - xh) ** 2).sum(-1)
    ev = 1 - err.sum() / ((x - x.mean(0)) ** 2).sum()
    legacy = []
    for a, b in ((0, n1), (n1, n1 + n2)):
        xs, es = x[a:b], err[a:b]
        legacy.append((1 - es / ((xs - xs.mean(0)) ** 2).sum(-1)).mean())
    legacy = torch.stack(legacy).mean()
    l2_ratio = (xh.norm(dim=-1) / x.norm(dim=-1)).mean()
    rrb = (xh.norm(dim=-1) ** 2).mean() / (x * xh).sum(-1).mean()
    lc = torch.randn(T, V, dtype=torch.float64).float().double() * 2
    ls = (lc + torch.randn(T, V, dtype=torch.float64) * 0.5).float().double()
    lz = torch.randn(T, V, dtype=torch.float64).float().double()
    tgt = torch.randint(0, V, (T,))
    def ce(l):
        return torch.nn.functional.cross_entropy(l[:-1], tgt[1:])
    def kl(l):
        p = torch.log_softmax(lc[:-1], -1)
        q = torch.log_softmax(l[:-1], -1)
        return (p.exp() * (p - q)).sum(-1).mean()
    vals = {
        "l0": (f > 0).sum(-1).double().mean(), "l1": f.sum(-1).mean(), "mse": err.mean(),
        "explained_variance": ev, "explained_variance_legacy": legacy, "l2_ratio": l2_ratio,
        "rel_recon_bias": rrb, "ce_clean": ce(lc), "ce_sae": ce(ls), "ce_zero": ce(lz),
        "kl_sae": kl(ls), "kl_zero": kl(lz),
    }
    vals["ce_loss_score"] = (vals["ce_zero"] - vals["ce_sae"]) / (vals["ce_zero"] - vals["ce_clean"])
    vals["kl_div_score"] = (vals["kl_zero"] - vals["kl_sae"]) / vals["kl_zero"]
    t = {"x": x.float(), "x_hat": xh.float(), "f": f.float(), "clean": lc.float(),
         "spliced": ls.float(), "zero": lz.float(), "targets": tgt.float(),
         "dims": torch.tensor([D, S, n1, n2, T, V], dtype=torch.float32)}
    for k, v in vals.items():
        t["ref_" + k] = torch.tensor([v.item()], dtype=torch.float64)
    write_st(os.path.join(OUT, "ref.safetensors"), t)


if __name__ == "__main__":
    main()
