#!/usr/bin/python3
"""Reference ids for byte-level BPE, from OpenAI's GPT-2 encoder algorithm.

The algorithm is that of openai/gpt-2 src/encoder.py (bytes_to_unicode, get_pairs, bpe() with
bpe_ranks, re.findall with the GPT-2 pattern using the `regex` module for \\p{L}/\\p{N};
Debian package python3-regex), written out again here:
  - gpt2_cases.json: the full GPT-2 vocabulary (evals/tokenizers/gpt2), exactly encoder.py;
  - hf_gpt2_tiny_cases.json / hf_qwen2_tiny_cases.json: the small tokenizer.json files of
    tests/fixtures/hf/gpt2 and qwen2 (GPT-2's first 300 merges), with what HF's tokenizers
    add on top: special added tokens (<|endoftext|>) split out first, and for qwen2 its own
    Split regex and an NFC normalizer.
The texts are a hand-made multilingual set plus excerpts of the corpora in
../shared/assets/corpora (copied into the fixtures, so `make test` needs no assets).
Writes tests/fixtures/tok/{gpt2_cases,hf_gpt2_tiny_cases,hf_qwen2_tiny_cases}.json as
[{"text": ..., "ids": [...]}] (no BOS). Run from anywhere (make refs)."""
import hashlib
import json
import os
import random
import sys
import unicodedata

import regex as re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ASSETS = os.environ.get("ASSETS", os.path.join(ROOT, "..", "shared", "assets"))
GPT2 = os.path.join(ROOT, "evals", "tokenizers", "gpt2")
FIX = os.path.join(ROOT, "tests", "fixtures")

GPT2_PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

HAND = [
    "",
    "Hello world",
    "Hello, world! How are you?",
    "I'm sure they'll say we've done what you'd've wanted; it's Tom's.",
    "DON'T SHOUT: 'S 'T 'RE 'VE 'M 'LL 'D are case-sensitive in GPT-2",
    "'s 't 're 've 'm 'll 'd''s'''",
    "   leading spaces and trailing spaces   ",
    "runs  of   spaces    between     words      here",
    "tabs\tand\t\ttabs\t \t mixed",
    "line one\nline two\n\nline four\n\n\n",
    "windows\r\nline\r\nendings\r\n\r\n",
    " \n \t \r\n \u000b \u000c ",
    "digits 0 12 345 6789 3.14159 1,000,000 2024-11-28 10:30",
    "phone +1 (555) 123-4567, zip 90210, version v1.2.3-rc4",
    "punctuation!!! ??? ... ,,, ;;; ::: --- ___ *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}}",
    "<html><body class=\"x\">a &amp; b</body></html>",
    "def f(x):\n    return x ** 2  # square\n\tif x: pass",
    "Кошка сидит на окне. Привет, мир! Ёжик в тумане.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "日本語のテキストです。東京は大きい都市です。",
    "中文测试：你好，世界！这是一个句子。",
    "한국어 문장입니다. 안녕하세요!",
    "مرحبا بالعالم، هذه جملة عربية.",
    "שלום עולם",
    "नमस्ते दुनिया, यह हिंदी है।",
    "สวัสดีชาวโลก",
    "Ελληνικά: Γειά σου Κόσμε",
    "café naïve résumé Ångström Zürich façade",
    "emoji 😀😃😄 🐱🐶 👍🏽 ❤️ ✨",
    "family 👨‍👩‍👧‍👦 and coder 👩‍💻 and rainbow flag 🏳️‍🌈",
    "flags 🇫🇷🇩🇪🇯🇵 keycap 1️⃣ #️⃣",
    "math ∑ ∫ √ ∞ ≠ ≤ ≥ ± × ÷ → ⇒ ∀ ∃",
    "superscripts x² y³ ½ ¾ and roman Ⅻ and arabic-indic ٣٤٥",
    "control \u001c\u001d\u001e\u001f chars and nbsp\u00a0here and ideographic\u3000space",
    "line sep\u2028para sep\u2029 nel\u0085 zero-width\u200bspace\u200d joiner",
    "combining e\u0301 a\u0308 o\u0302 and precomposed é ä ô",
    "The <|endoftext|> marker inside text",
    "<|endoftext|>",
    "a<|endoftext|>b <|endoftext|> c",
    "trailing newline\n",
    "x" * 300,
    " " * 40 + "x",
    "\n" * 20,
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbb",
    "Running Configuration Runtime Runner RUNNING",
    "a\u00adb soft hyphen, \u00ff\u00fe bytes, \u0100\u0120 Ġ Ā",
    "\U0001F600" * 5 + "\U00010348\U0001D11E",
]


def corpus_texts():
    out = []
    rnd = random.Random(20241128)
    wt = open(os.path.join(ASSETS, "corpora", "wikitext2-valid.txt"), encoding="utf-8").read()
    lines = [l for l in wt.split("\n") if l.strip()]
    for l in rnd.sample(lines, 30):
        out.append(l[:1200])
    # a longer multi-line block, with the corpus's own blank lines
    out.append("\n".join(wt.split("\n")[:12]))
    xml = open(os.path.join(ASSETS, "corpora", "enwik8-prefix.xml"), "rb").read()
    for k in range(12):
        at = rnd.randrange(0, len(xml) - 2000)
        chunk = xml[at:at + 1500].decode("utf-8", errors="ignore")
        out.append(chunk)
    # non-ASCII-heavy passages of enwik8 (interlanguage links, names)
    text = xml.decode("utf-8", errors="ignore")
    hits = [m.start() for m in re.finditer(r"\[\[(ja|zh|ru|ar|ko|he|el|th|hi):", text)]
    for at in rnd.sample(hits, min(10, len(hits))):
        out.append(text[at:at + 300])
    return out


def bytes_to_unicode():
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
          list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(2 ** 8):
        if b not in bs:
            bs.append(b)
            cs.append(2 ** 8 + n)
            n += 1
    cs = [chr(n) for n in cs]
    return dict(zip(bs, cs))


def get_pairs(word):
    pairs = set()
    prev = word[0]
    for ch in word[1:]:
        pairs.add((prev, ch))
        prev = ch
    return pairs


class Encoder:
    """openai/gpt-2 src/encoder.py's Encoder.encode, with optional special-token splitting
    and normalisation (HF additions) and a chosen regex."""

    def __init__(self, encoder, bpe_merges, pat=GPT2_PAT, specials=(), nfc=False):
        self.encoder = encoder
        self.byte_encoder = bytes_to_unicode()
        self.bpe_ranks = dict(zip(bpe_merges, range(len(bpe_merges))))
        self.cache = {}
        self.pat = re.compile(pat)
        self.specials = list(specials)
        self.nfc = nfc

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        pairs = get_pairs(word)
        if not pairs:
            return token
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new_word.extend(word[i:j])
                    i = j
                except ValueError:
                    new_word.extend(word[i:])
                    break
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        word = " ".join(word)
        self.cache[token] = word
        return word

    def encode_plain(self, text):
        if self.nfc:
            text = unicodedata.normalize("NFC", text)
        bpe_tokens = []
        for token in re.findall(self.pat, text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            bpe_tokens.extend(self.encoder[bpe_token] for bpe_token in self.bpe(token).split(" "))
        return bpe_tokens

    def encode(self, text):
        if not self.specials:
            return self.encode_plain(text)
        out = []
        pat = "(" + "|".join(re.escape(s) for s in self.specials) + ")"
        for k, part in enumerate(re.split(pat, text)):
            if k % 2:
                out.append(self.encoder[part])
            elif part:
                out.extend(self.encode_plain(part))
        return out

    def decode(self, ids):
        dec = {v: k for k, v in self.encoder.items()}
        bd = {v: k for k, v in self.byte_encoder.items()}
        text = "".join(dec[i] for i in ids)
        return bytearray([bd[c] for c in text]).decode("utf-8")


def write(name, cases):
    path = os.path.join(FIX, "tok", name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"wrote {path} ({len(cases)} cases)", file=sys.stderr)


def main():
    texts = HAND + corpus_texts()
    encoder = json.load(open(os.path.join(GPT2, "encoder.json"), encoding="utf-8"))
    bpe_data = open(os.path.join(GPT2, "vocab.bpe"), encoding="utf-8").read()
    merges = [tuple(m.split()) for m in bpe_data.split("\n")[1:-1]]
    full = Encoder(encoder, merges)
    cases = []
    for t in texts:
        ids = full.encode(t)
        assert full.decode(ids) == t
        cases.append({"text": t, "ids": ids})
    write("gpt2_cases.json", cases)

    # whole corpora: the count and SHA-256 of the ids as `evalrun tokenize` prints them
    # (decimal, space-separated, one trailing newline); the CLI test compares (skipped when
    # ../shared/assets is absent)
    digests = {}
    for name in ("wikitext2-valid.txt", "enwik8-prefix.xml"):
        raw = open(os.path.join(ASSETS, "corpora", name), "rb").read()
        ids = full.encode(raw.decode("utf-8"))
        line = (" ".join(map(str, ids)) + "\n").encode()
        digests[name] = {"bytes": len(raw), "n_ids": len(ids),
                         "sha256": hashlib.sha256(line).hexdigest()}
    path = os.path.join(FIX, "tok", "gpt2_corpus_digests.json")
    with open(path, "w") as f:
        json.dump(digests, f, indent=1)
        f.write("\n")
    print(f"wrote {path}", file=sys.stderr)

    for folder, out in (("gpt2", "hf_gpt2_tiny_cases.json"), ("qwen2", "hf_qwen2_tiny_cases.json")):
        tj = json.load(open(os.path.join(FIX, "hf", folder, "tokenizer.json"), encoding="utf-8"))
        vocab = tj["model"]["vocab"]
        mlist = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
                 for m in tj["model"]["merges"]]
        pre = tj["pre_tokenizer"]
        pat = GPT2_PAT if pre["type"] == "ByteLevel" else pre["pretokenizers"][0]["pattern"]["Regex"]
        nfc = (tj.get("normalizer") or {}).get("type") == "NFC"
        specials = [a["content"] for a in tj["added_tokens"] if a["special"]]
        enc = Encoder(vocab, mlist, pat=pat, specials=specials, nfc=nfc)
        cases = []
        for t in texts:
            if nfc and unicodedata.normalize("NFC", t) != t:
                continue  # evalrun does not normalise (docs/formats.md)
            cases.append({"text": t, "ids": enc.encode(t)})
        write(out, cases)
    main_variants(HAND + texts[len(HAND):len(HAND) + 15])


LLAMA3_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"""
                  r"""[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")


def variants():
    """Pre-tokenizer variants of the small GPT-2 tokenizer.json, as found in the wild:
    llama3 (Split with Llama-3's regex + ByteLevel without regex, ignore_merges),
    smollm (Digits individual + ByteLevel with regex), prefix (ByteLevel add_prefix_space,
    as RoBERTa). Each is written next to its cases; its reference pre-tokenizes as HF's
    pipeline does (each step splits every piece of the previous one)."""
    base = json.load(open(os.path.join(FIX, "hf", "gpt2", "tokenizer.json"), encoding="utf-8"))
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    out = {}
    t = json.loads(json.dumps(base))
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated",
         "invert": False}, dict(bl, use_regex=False)]}
    t["model"]["ignore_merges"] = True
    out["llama3"] = (t, [("regex", LLAMA3_PATTERN)], False)
    t = json.loads(json.dumps(base))
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, bl]}
    out["smollm"] = (t, [("regex", r"\p{N}"), ("regex", GPT2_PAT)], False)
    t = json.loads(json.dumps(base))
    t["pre_tokenizer"] = dict(bl, add_prefix_space=True)
    out["prefix"] = (t, [("regex", GPT2_PAT)], True)
    return out


def isolated_split(pat, pieces):
    res = []
    for p in pieces:
        at = 0
        for m in re.finditer(pat, p):
            if m.start() == m.end():
                continue
            if m.start() > at:
                res.append(p[at:m.start()])
            res.append(m.group(0))
            at = m.end()
        if at < len(p):
            res.append(p[at:])
    return res


def encode_variant(enc, steps, prefix, text, ignore_merges):
    out = []
    pat = "(" + "|".join(re.escape(s) for s in enc.specials) + ")"
    for k, part in enumerate(re.split(pat, text)):
        if k % 2:
            out.append(enc.encoder[part])
            continue
        if not part:
            continue
        if prefix and not part.startswith(" "):
            part = " " + part
        pieces = [part]
        for _, p in steps:
            pieces = isolated_split(p, pieces)
        for tok in pieces:
            tok = "".join(enc.byte_encoder[b] for b in tok.encode("utf-8"))
            if ignore_merges and tok in enc.encoder:
                out.append(enc.encoder[tok])
                continue
            out.extend(enc.encoder[t] for t in enc.bpe(tok).split(" "))
    return out


def main_variants(texts):
    for name, (tj, steps, prefix) in variants().items():
        path = os.path.join(FIX, "tok", f"variant_{name}.tokenizer.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(tj, f, ensure_ascii=False)
            f.write("\n")
        mlist = [tuple(m.split(" ")) for m in tj["model"]["merges"]]
        specials = [a["content"] for a in tj["added_tokens"] if a["special"]]
        enc = Encoder(tj["model"]["vocab"], mlist, specials=specials)
        cases = [{"text": t, "ids": encode_variant(enc, steps, prefix, t,
                                                   tj["model"].get("ignore_merges", False))}
                 for t in texts]
        write(f"variant_{name}_cases.json", cases)


if __name__ == "__main__":
    main()
