#!/usr/bin/python3
"""fixture.py -- data for the Slurm end-to-end test (tests/slurm/e2e.sh); standard library only.

  fixture.py sae DIR          a tiny SAELens-layout SAE for the shipped stories260K
                              (blocks.2.hook_resid_post, d_in 64, d_sae 64, seeded weights)
  fixture.py index DB N       a feature index for features 0..N-1 of the SAE registered in DB
                              (the newest saes row): per feature, two examples in each of three
                              activation intervals of (0, 3] and three non-activating ones,
                              8-token windows of seeded token ids (vocabulary 512)

The sharded run under test reads only the index's examples and the grader's answers, so the
index's numbers need no meaning; they must be the same for every shard and for the
single-process reference, which they are (one database, copied).
"""
import json
import os
import random
import sqlite3
import struct
import sys

D_IN, D_SAE, VOCAB, WINDOW = 64, 64, 512, 8


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


def make_sae(out):
    os.makedirs(out, exist_ok=True)
    rnd = random.Random(7)
    w_dec = [rnd.gauss(0.0, 0.1) for _ in range(D_SAE * D_IN)]
    w_enc = [w_dec[i * D_IN + c] for c in range(D_IN) for i in range(D_SAE)]
    write_safetensors(os.path.join(out, "sae_weights.safetensors"), {
        "W_enc": ([D_IN, D_SAE], w_enc),
        "b_enc": ([D_SAE], [0.0] * D_SAE),
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


def make_index(db, n_features):
    con = sqlite3.connect(db)
    (sae_id,) = con.execute("SELECT max(id) FROM saes").fetchone()
    if sae_id is None:
        sys.exit("fixture.py: %s has no SAE registered" % db)
    rnd = random.Random(11)
    rows = []
    for f in range(n_features):
        for interval in range(3):
            for j in range(2):
                act = interval + 0.25 + 0.5 * j
                rows.append((f, "interval", interval, act))
        for j in range(3):
            rows.append((f, "nonactivating", None, 0.0))
    with con:
        for f, kind, interval, act in rows:
            toks = [rnd.randrange(1, VOCAB) for _ in range(WINDOW)]
            center = rnd.randrange(1, WINDOW)
            acts = [0.0] * WINDOW
            acts[center] = act
            con.execute("INSERT INTO examples (sae_id, feature_idx, kind, interval, activation, "
                        "center, tokens, acts, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (sae_id, f, kind, interval, act, center,
                         struct.pack("<%di" % WINDOW, *toks),
                         struct.pack("<%df" % WINDOW, *acts), "window %d" % len(toks)))
    con.close()


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "sae":
        make_sae(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "index":
        make_index(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
