#!/usr/bin/env python3
"""Writes the committed seed corpus of every fuzz target into tests/fuzz/corpus/<target>/
(small files cut from the fixtures and shipped data, plus a few hand-made inputs). Rerun after
a fixture format changes: python3 tests/fuzz/make_seeds.py. Deterministic."""
import glob
import hashlib
import json
import os
import shutil
import struct

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def put(target, data, name=None):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    name = name or hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(rel):
    with open(os.path.join(ROOT, rel), "rb") as f:
        return f.read()


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    # safetensors: the small reference tensors, one SAE, and a hand-made two-tensor file
    for p in sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/hf/*/ref.safetensors")))[:3]:
        put("safetensors", read(os.path.relpath(p, ROOT)))
    put("safetensors", read("tests/fixtures/sae/bad_nan/sae_weights.safetensors"))
    hdr = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "BF16", "shape": [1, 2], "data_offsets": [8, 12]},
                      "__metadata__": {"format": "pt"}}).encode()
    put("safetensors", struct.pack("<Q", len(hdr)) + hdr + struct.pack("<2f", 1.5, -2) + b"\x80\x3f\x00\x40")
    # SAE cfg.json: every shape the fixtures hold
    for p in sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/sae/*/cfg.json"))) + \
            [os.path.join(ROOT, "evals/saes/stories260K-L2/cfg.json")]:
        put("sae_cfg", read(os.path.relpath(p, ROOT)))
    # .npy: every member of the Gemma Scope fixtures' params.npz (stored, deflated, float16,
    # Fortran order, big-endian), and two hand-made headers (version 2.0, a 0-d array)
    import zipfile
    for p in sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/sae/formats/**/params.npz"),
                              recursive=True))[:3]:
        with zipfile.ZipFile(p) as z:
            for name in sorted(z.namelist()):
                if name in ("b_enc.npy", "threshold.npy", "W_enc.npy"):
                    put("npy", z.read(name)[:4096] if name == "W_enc.npy" else z.read(name))
    h = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }".ljust(63) + b"\n"
    put("npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", len(h)) + h + struct.pack("<2f", 1, 2))
    h = b"{'descr': '<f8', 'fortran_order': False, 'shape': (), }".ljust(63) + b"\n"
    put("npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + struct.pack("<d", 3))
    # HF config.json: one per model_type
    for p in sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/hf/*/config.json"))):
        put("hf_config", read(os.path.relpath(p, ROOT)))
    # llama2.c: stories260K's header alone, and a whole tiny checkpoint (dim 4, hidden 8,
    # 1 layer, 2 heads, vocab 8, seq_len 4) that loads, so the fuzzer starts past the size check
    put("llama2c", read("evals/models/stories260K/stories260K.bin")[:28])
    dim, hid, L, H, kv, V, T = 4, 8, 1, 2, 2, 8, 4
    hd = dim // H
    n = V * dim + L * (dim + 4 * dim * dim + dim + 3 * dim * hid) + dim + T * hd
    put("llama2c", struct.pack("<7i", dim, hid, L, H, kv, V, T) +
        struct.pack("<%df" % n, *[((i * 37) % 11 - 5) / 50 for i in range(n)]))
    # tokenizers: first byte picks the loader (odd: tokenizer.bin, even: tokenizer.json)
    put("tok_load", b"\x01" + read("tests/fixtures/tok/tok512.bin"))
    for p in ["tests/fixtures/hf/gpt2/tokenizer.json", "tests/fixtures/hf/llama/tokenizer.json",
              "tests/fixtures/hf/qwen2/tokenizer.json"]:
        put("tok_load", b"\x00" + read(p))
    # encoder inputs: texts from the GPT-2 reference cases
    for c in json.loads(read("tests/fixtures/tok/gpt2_cases.json"))[:24]:
        put("tok_encode", c["text"][:400])
    put("tok_encode", "Once upon a time, there was a little girl named Lily. <s> </s> <|endoftext|>")
    # import: Neuronpedia explanation and score rows (plain and gzip), an API feature, a list,
    # SAEBench autointerp and core results
    import gzip
    np_rows = ('{"id":"e1","modelId":"gemma-2-2b","layer":"20-gemmascope-res-16k","index":"3",'
               '"description":"the word knows","authorId":"a","explanationModelName":"m"}\n'
               '{"id":"s1","explanationId":"e1","value":0.5,"explanationScoreTypeName":"recall_alt"}\n')
    put("import", np_rows)
    put("import", gzip.compress(np_rows.encode(), mtime=0))
    put("import", '{"index":"7","explanations":[{"id":"x","description":"verbs\\nof choice",'
                  '"scores":[{"value":0.25,"explanationScoreTypeName":"eleuther_fuzz"}]}]}')
    put("import", '[{"index":1,"description":"a"},{"index":"1","description":"b {{x}}"}]')
    put("import", json.dumps({"eval_type_id": "autointerp", "eval_result_metrics":
                              {"autointerp": {"autointerp_score": 0.7}},
                              "eval_result_unstructured": {"3": {"latent": 3, "explanation": "x",
                                                                 "score": 0.8},
                                                           "4": {"explanation": "", "score": None}}}))
    put("import", json.dumps({"eval_type_id": "core", "eval_result_metrics":
                              {"sparsity": {"l0": 40.5, "l1": None}}}))
    # features files
    put("features", read("evals/sets/sample_features.txt"))
    put("features", "# comment\n\n3\n5\tthe word \"the\"\n 7 \t names, places \r\n")
    put("features", "12\t\u00e9t\u00e9 \u6f22\u5b57\n")
    # prompt sets: first byte % 3 picks attribution (0), steering (1), concepts (2)
    put("prompt_sets", b"\x00" + read("evals/sets/stories_attribution.json"))
    put("prompt_sets", b"\x00" + read("evals/sets/two_hop.json"))
    put("prompt_sets", b"\x01" + read("evals/sets/steering.json"))
    put("prompt_sets", b"\x02" + read("evals/sets/concepts.json"))
    # grader replies: first byte bit 0 picks OpenAI, bit 1 simulation logprobs
    ant = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
           "content": [{"type": "text", "text": "The contexts mention Lily.\nScore: 2"}],
           "stop_reason": "end_turn", "usage": {"input_tokens": 120, "output_tokens": 9}}
    put("grader_reply", b"\x00" + json.dumps(ant).encode())
    lp = {"content": [{"token": "[", "logprob": -0.01, "top_logprobs": []}] +
          [{"token": t, "logprob": -0.1, "top_logprobs": [{"token": "1", "logprob": -0.1},
                                                           {"token": "0", "logprob": -2.4}]}
           for t in ["1", ",", "0", ",", "1", ",", "0", ",", "1"]]}
    oai = {"id": "c1", "object": "chat.completion", "model": "gpt-x",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "[1, 0, 1, 0, 1]"},
                        "logprobs": lp, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 50, "completion_tokens": 7}}
    put("grader_reply", b"\x01" + json.dumps(oai).encode())
    for text in ["Final score = 3", "**Rating:** 2/3\n", "Answer: yes", "2, 5", "None",
                 "Description: \"names of little girls\"", "Concept: 2\nFluency: 1", "[0,1,1,0,0]"]:
        msg = dict(ant, content=[{"type": "text", "text": text}])
        put("grader_reply", b"\x00" + json.dumps(msg).encode())
    put("grader_reply", b"\x00" + json.dumps({"type": "error", "error": {
        "type": "rate_limit_error", "message": "Number of requests has exceeded your rate limit"}}).encode())
    # corpora: first byte odd = JSON Lines ("text"), even = plain text
    put("corpus", b"\x00" + "Once upon a time, there was a little girl named Lily.\nShe liked to play.\n\n".encode() * 40)
    put("corpus", b"\x00" + "caf\u00e9 \u6f22\u5b57\r\nno newline at the end".encode())
    put("corpus", b"\x01" + b'{"text": "one"}\n\n{"text": "two\\nlines", "id": 2}\n{"text": "\\u00e9"}\n')
    # HTTP responses, byte for byte
    body = json.dumps(ant).encode()
    put("http", b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    put("http", b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 2\r\n\r\n{}")
    put("http", b"HTTP/1.1 503 Service Unavailable\r\nretry-after: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n")
    put("http", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n")
    put("http", b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 52\r\n\r\n"
        b"{\"error\":{\"message\":\"invalid x-api-key\",\"type\":\"a\"}}")


if __name__ == "__main__":
    main()
