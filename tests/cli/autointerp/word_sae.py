#!/usr/bin/env python3
"""word_sae.py -- writes a 2-latent SAE (SAELens layout) on stories260K's blocks.0.hook_resid_pre
whose latent 0 fires exactly on one token id (a known "word" latent for the autointerp tests),
and whose latent 1 never fires (a dead latent).

Python standard library only; reads the llama2.c checkpoint directly: at blocks.0.hook_resid_pre
the residual stream of a token is its row of the embedding table, so latent 0 =
ReLU(x . u - b) with u the target row's unit vector and b halfway between the target's
projection |e_t| and the largest projection of any other token row, which the script checks to
be smaller.

Usage: word_sae.py MODEL.bin TOKEN_ID OUT_DIR
"""
import json
import math
import os
import struct
import sys


def main():
    model, tok, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(model, "rb") as f:
        dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", f.read(28))
        vocab = abs(vocab)
        emb = struct.unpack("<%df" % (vocab * dim), f.read(4 * vocab * dim))
    rows = [emb[i * dim:(i + 1) * dim] for i in range(vocab)]
    e = rows[tok]
    norm = math.sqrt(sum(v * v for v in e))
    u = [v / norm for v in e]
    other = max(sum(a * b for a, b in zip(r, u)) for i, r in enumerate(rows) if i != tok)
    if not other < norm:
        sys.exit("token %d is not separable: projection %g of another row >= %g" % (tok, other,
                                                                                   norm))
    b = -(norm + other) / 2
    d_sae = 2
    W_enc = [0.0] * (dim * d_sae)  # (d_in, d_sae) row-major
    for i in range(dim):
        W_enc[i * d_sae + 0] = u[i]
        W_enc[i * d_sae + 1] = 0.0
    b_enc = [b, -1.0]              # latent 1: pre = -1 everywhere: dead
    W_dec = u + [0.0] * dim        # (d_sae, d_in)
    b_dec = [0.0] * dim
    tensors = [("W_enc", [dim, d_sae], W_enc), ("b_enc", [d_sae], b_enc),
               ("W_dec", [d_sae, dim], W_dec), ("b_dec", [dim], b_dec)]
    header, data, off = {}, b"", 0
    for name, shape, vals in tensors:
        raw = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(raw)]}
        data += raw
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "sae_weights.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)
    cfg = {"d_in": dim, "d_sae": d_sae, "architecture": "standard", "dtype": "float32",
           "apply_b_dec_to_input": True, "normalize_activations": "none",
           "hook_name": "blocks.0.hook_resid_pre", "hook_layer": 0,
           "model_name": "stories260K", "context_size": seq_len}
    with open(os.path.join(out, "cfg.json"), "w") as f:
        json.dump(cfg, f)
    print("latent 0 fires on token %d: projection %.4f, others at most %.4f, bias %.4f"
          % (tok, norm, other, b))


if __name__ == "__main__":
    main()
