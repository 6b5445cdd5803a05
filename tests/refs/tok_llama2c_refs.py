#!/usr/bin/python3
"""Reference ids for the llama2.c tokenizer (tok512.bin of stories260K).

A line-by-line Python port of llama2.c run.c's encode() (BOS, dummy-prefix " ", UTF-8 code
point lookup with <0xXX> byte fallback at id byte + 3, then greedy merges of the best-scoring
adjacent pair). Checked once against run.c itself (compiled from a fetched llama2.c, not in
the tree): same ids on every case here.

Writes tests/fixtures/tok/llama2c_cases.json: [{"text": ..., "ids": [...]}, ...] (ids with
BOS=1, no EOS). Run from the repository root (make refs)."""
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ASSETS = os.environ.get("ASSETS", os.path.join(ROOT, "..", "shared", "assets"))
TOK = os.path.join(ASSETS, "models", "stories260K", "tok512.bin")
OUT = os.path.join(ROOT, "tests", "fixtures", "tok", "llama2c_cases.json")

GREEDY = ("Once upon a time, there was a little girl named Lily. She loved to play outside in "
          "the park. One day, she saw a big, red ball. She wanted to play with it, but it was too "
          "high.\nLily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know "
          "what to do. She said, \"I want to play with your ball, but I can't find it.\"\nLily was "
          "sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to do.\""
          "\nLily didn't want to help her mom, so she")

CASES = [
    "Once upon a time",
    GREEDY,
    "",
    " ",
    "a",
    "Hello, world!",
    "  two  spaces   and\ttabs\t\tand\r\nCRLF\n\nlines",
    "Tom's dog didn't bark; we'll see what they've done.",
    "The year 2024 had 365 days, 12 months & 52 weeks: 3.14159...",
    "Кошка сидит на окне. Привет, мир!",
    "猫が好きです。中文测试，你好世界",
    "مرحبا بالعالم",
    "emoji: 🐱🐶 family 👨‍👩‍👧‍👦 flag 🇫🇷 heart ❤️",
    "café naïve résumé Ångström",
    "!!!???...,,,;;;:::---___***",
    "\n",
    "<s> </s> <unk> <0x41>",
]


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (max_len,) = struct.unpack_from("<i", data, 0)
    off, vocab, scores = 4, [], []
    while off < len(data):
        score, n = struct.unpack_from("<fi", data, off)
        piece = data[off + 8: off + 8 + n]
        vocab.append(piece.split(b"\0")[0])  # run.c compares C strings
        scores.append(score)
        off += 8 + n
    return max_len, vocab, scores


def encode(vocab, scores, text, bos=True):
    lookup = {}
    for i, v in enumerate(vocab):
        lookup.setdefault(v, i)
    b = text.encode("utf-8")
    toks = [1] if bos else []
    if b:
        toks.append(lookup[b" "])
    buf = b""
    for i, c in enumerate(b):
        if c & 0xC0 != 0x80:
            buf = b""
        buf += bytes([c])
        nxt = b[i + 1] if i + 1 < len(b) else 0
        if nxt & 0xC0 == 0x80 and len(buf) < 4:
            continue
        if buf in lookup:
            toks.append(lookup[buf])
        else:
            toks.extend(x + 3 for x in buf)
        buf = b""
    while True:
        best, best_id, best_idx = -1e10, -1, -1
        for i in range(len(toks) - 1):
            m = vocab[toks[i]] + vocab[toks[i + 1]]
            j = lookup.get(m, -1)
            if j != -1 and scores[j] > best:
                best, best_id, best_idx = scores[j], j, i
        if best_idx == -1:
            break
        toks[best_idx:best_idx + 2] = [best_id]
    return toks


def main():
    _, vocab, scores = load(TOK)
    out = [{"text": t, "ids": encode(vocab, scores, t)} for t in CASES]
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"wrote {OUT} ({len(out)} cases)", file=sys.stderr)


if __name__ == "__main__":
    main()
