#!/usr/bin/python3
"""Writes tests/fixtures/evals/stories260K_rand/: a small SAE in the SAELens layout for the
shipped stories260K at blocks.2.hook_resid_post, for the influence/attribution CLI tests when
the demo SAE (evals/saes/stories260K-L2) is not wanted or not there.

Standard SAE, d_in 64, d_sae 128: decoder rows are seeded random unit vectors, the encoder is
the decoder transposed, b_dec = 0 and b_enc = -1.5. The residual stream there has a norm of
about 7.5 (projections on a random unit direction have a spread of about 0.9), so each
feature fires on a few percent of the tokens. Not trained: it has no meaning, but every
identity the tests check (error term kept, attribution = f * grad . dir, ablation ~ -attr)
holds for any SAE. Standard library only (no PyTorch needed)."""
import json
import math
import os
import random
import struct
import sys

D_IN, D_SAE, BIAS, SEED = 64, 128, -1.5, 1234


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        shape, vals = tensors[name]
        data = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = os.path.join(root, "tests/fixtures/evals/stories260K_rand")
    os.makedirs(out, exist_ok=True)
    rnd = random.Random(SEED)
    dec = []
    for _ in range(D_SAE):
        v = [rnd.gauss(0.0, 1.0) for _ in range(D_IN)]
        n = math.sqrt(sum(x * x for x in v))
        dec.append([x / n for x in v])
    w_dec = [x for row in dec for x in row]                               # [d_sae, d_in]
    w_enc = [dec[i][c] for c in range(D_IN) for i in range(D_SAE)]       # [d_in, d_sae]
    write_safetensors(os.path.join(out, "sae_weights.safetensors"), {
        "W_enc": ([D_IN, D_SAE], w_enc),
        "b_enc": ([D_SAE], [BIAS] * D_SAE),
        "W_dec": ([D_SAE, D_IN], w_dec),
        "b_dec": ([D_IN], [0.0] * D_IN),
    })
    cfg = {"d_in": D_IN, "d_sae": D_SAE, "architecture": "standard", "dtype": "float32",
           "apply_b_dec_to_input": True, "normalize_activations": "none",
           "hook_name": "blocks.2.hook_resid_post", "hook_layer": 2,
           "model_name": "stories260K", "context_size": 256, "prepend_bos": True}
    with open(os.path.join(out, "cfg.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    print("wrote", out, file=sys.stderr)


if __name__ == "__main__":
    main()
