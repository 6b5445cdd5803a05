#!/usr/bin/env python3
"""mock_api.py -- the local API server the grader tests talk to over real HTTP on 127.0.0.1.

Speaks the two APIs evalrun's grader uses, with or without the /v1 prefix:
  POST /v1/messages           Anthropic Messages (x-api-key, anthropic-version)
  POST /v1/chat/completions   OpenAI-compatible Chat Completions (Authorization: Bearer)
and the two batch interfaces (see batch_request() below; the script's "batch" object):
  POST /v1/files (multipart, purpose=batch), GET /v1/files/ID/content,
  POST /v1/batches, GET /v1/batches/ID                        OpenAI's Batch API
  POST /v1/messages/batches, GET /v1/messages/batches/ID(/results)   Anthropic's

Python 3 standard library only. Usage:
  python3 tests/server/mock_api.py --script SCRIPT.json --log LOG.jsonl --port-file PORT

It listens on 127.0.0.1 on a free port, writes the port number to --port-file (atomically) and
prints it. Behaviour is controlled by the JSON script file, re-read on every request, so a test
changes behaviour by rewriting it; per-script counters restart whenever its content changes:

  {
    "answer": "Score: 3",          answer text (default "ok")
    "answers": ["a", "b"],         the n-th request (from 0) gets answers[n] (the last one
                                   after the end); overrides "answer"
    "rules": [                     first rule whose regex matches the prompt wins:
      {"match": "feature (\\d)",   Python regex searched in the last user message
       "answer": "Score: \\1",     expanded with the match's groups (m.expand)
       "latency_ms": 500,          optional per-rule overrides of the keys below
       "status": 500, "mode": "drop"}
    ],
    "latency_ms": 0,               delay before answering
    "gate": N,                     request k (from 0) waits until N * (k // N + 1) requests have
                                   arrived under the script (at most 10 s), then its latency:
                                   a client that keeps N in flight is seen with all N in flight
                                   at once ("inflight" in the log) however loaded the machine
    "after_answered": K,           (also per rule) wait until K requests under the script have
                                   been answered (at most 10 s), then the latency
    "status": 200,                 HTTP status for every request (error body when not 200)
    "fail_first": 0,               the first N requests get "fail" instead of an answer
    "fail_skip": 0,                ... counted after the first K requests (answered as usual),
                                   e.g. 1 to let a preflight request through before a burst
    "fail": {"status": 429, "retry_after": "1"}   or {"mode": "drop"} etc.;
                                   "retry_after_date": N sends Retry-After as the HTTP-date
                                   N seconds from now
    "mode": "ok",                  ok | malformed (not JSON) | truncated (cut JSON) |
                                   drop (close the connection without answering) |
                                   empty (200 with no content)
    "api_key": "k",                when set, a request whose key differs gets 401
    "models": ["m1"],              when set, another model name gets 404
                                   (always: an OpenAI o-series or gpt-5 model gets OpenAI's
                                   400 for max_tokens, or for a temperature other than 1)
    "logprobs": true,              OpenAI: attach logprobs for each answer token
                                   ("digits": numbers are tokens of their own, and a 0 or 1
                                   has the other digit as alternative: p 0.9 / 0.1)
    "model_echo": "name"           the model name to report (default: the requested one)
    "prompt_cache": {"min_tokens": 0}   simulate the providers' prompt caches (tokens = words;
                                   input = system + user text + 3): Anthropic caches the text up
                                   to its last block marked cache_control (a prefix seen before
                                   is read, cache_read_input_tokens, else written,
                                   cache_creation_input_tokens; input_tokens is the rest);
                                   OpenAI reports as prompt_tokens_details.cached_tokens the
                                   longest word prefix shared with an earlier request. Prefixes
                                   under min_tokens are not cached. Reset with the script.
    "judge": {"word": "Lily",      answer as an autointerp judge that "sees" the word (checked
              "format": "numbers"  before "rules"): numbers -- the N of the prompt's lines
                                   "N. text" whose text contains the word, comma-separated, or
                                   "None"; list -- "[1,0,...]" over those lines (a line
                                   with ⟦...⟧ marks: 1 only when a marked span holds the word);
                                   simulate -- "[10,0,...]" over the lines "N<TAB>token";
                                   a prompt asking for "Description:" gets "Description: the
                                   word WORD"
              }
  }

Every request is appended to --log as one JSON line: {"n", "path", "port" (the client's
source port, to check connection reuse), "headers", "body", "status", "t", "usage" (what a
200 answer carries, with "prompt_cache"), "inflight" (the
requests under the current script the server was handling when it arrived, itself included:
the client's concurrency as the server sees it; a request stops counting just before its
answer is written, and one left over from an earlier script, e.g. a client's time-out, never
counts)}.
GET /_health answers 200 "ok" without logging (used to wait for start-up).
"""
import argparse
import email.utils
import json
import math
import os
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, script_path, log_path):
        self.script_path = script_path
        self.log_path = log_path
        self.lock = threading.Lock()
        self.script_text = None
        self.script = {}
        self.count = 0  # requests seen under the current script
        self.total = 0
        self.gen = 0  # which script: +1 whenever its content changes
        self.active = 0  # requests under the current script being handled now
        self.answered = 0  # requests under the current script whose answer went out
        self.cond = threading.Condition(self.lock)  # signalled on every arrival and answer
        self.cached = set()  # Anthropic: prefixes written to the simulated prompt cache
        self.seen = []  # OpenAI: the word lists of earlier requests

    def next(self):
        """Returns (script, n, gen, inflight): the current script, this request's 0-based
        number in it, the script's number, and the requests in flight under it, this one
        included (it counts until Handler.leave())."""
        try:
            with open(self.script_path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            text = "{}"
        with self.lock:
            if text != self.script_text:
                self.script_text = text
                try:
                    self.script = json.loads(text) if text.strip() else {}
                except ValueError:
                    self.script = {}
                self.gen += 1
                self.count = 0
                self.active = 0
                self.answered = 0
                self.cached = set()
                self.seen = []
            n = self.count
            self.count += 1
            self.total += 1
            self.active += 1
            self.cond.notify_all()
            return self.script, n, self.gen, self.active

    def log(self, rec):
        if not self.log_path:
            return
        line = json.dumps(rec, sort_keys=True) + "\n"
        with self.lock:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(line)


def judge_answer(judge, prompt):
    """The answer of a judge that fires exactly when judge["word"] is in the text."""
    word = judge.get("word", "")
    fmt = judge.get("format", "numbers")
    if "Description:" in prompt:  # an explainer prompt
        return "Description: the word %s" % word
    if fmt == "simulate":
        toks = re.findall(r"^\d+\t(.*)$", prompt, re.M)
        return "[" + ",".join("10" if word in t else "0" for t in toks) + "]"
    lines = re.findall(r"^(\d+)\. (.*)$", prompt, re.M)
    hits = [any(word in span for span in re.findall("\u27e6(.*?)\u27e7", t))
            if "\u27e6" in t else word in t for _, t in lines]
    if fmt == "list":
        return "[" + ",".join("1" if h else "0" for h in hits) + "]"
    nums = [n for (n, _), h in zip(lines, hits) if h]
    return ", ".join(nums) if nums else "None"


def segments(content):
    """(text, marked for caching) for each text part of a message's content."""
    if isinstance(content, str):
        return [(content, False)]
    if isinstance(content, list):
        return [(p.get("text", ""), bool(p.get("cache_control")))
                for p in content if isinstance(p, dict) and isinstance(p.get("text", ""), str)]
    return []


def cache_usage(st, api, body, answer, opts):
    """The usage of an answer under the simulated prompt caches (see "prompt_cache")."""
    min_tokens = int(opts.get("min_tokens", 0)) if isinstance(opts, dict) else 0
    segs = segments(body.get("system")) if api == "anthropic" else []
    for m in body.get("messages") or []:
        if isinstance(m, dict) and m.get("role") in ("system", "user"):
            segs += segments(m.get("content"))
    total = sum(len(t.split()) for t, _ in segs) + 3
    out = len(answer.split())
    if api == "anthropic":
        marked = [i for i, (_, c) in enumerate(segs) if c]
        prefix = segs[: marked[-1] + 1] if marked else []
        words = sum(len(t.split()) for t, _ in prefix)
        read = write = 0
        if words >= max(min_tokens, 1):
            key = "\0".join(t for t, _ in prefix)
            with st.lock:
                if key in st.cached:
                    read = words
                else:
                    write = words
                    st.cached.add(key)
        return {"input_tokens": total - read - write, "cache_creation_input_tokens": write,
                "cache_read_input_tokens": read, "output_tokens": out}
    words = [w for t, _ in segs for w in t.split()]
    best = 0
    with st.lock:
        for old in st.seen:
            k = 0
            while k < len(old) and k < len(words) and old[k] == words[k]:
                k += 1
            best = max(best, k)
        st.seen.append(words)
    cached = best if best >= min_tokens else 0
    return {"prompt_tokens": total, "completion_tokens": out, "total_tokens": total + out,
            "prompt_tokens_details": {"cached_tokens": cached}}


def prompt_of(path, body):
    """The text of the last user message, for rule matching."""
    msgs = body.get("messages") or []
    for m in reversed(msgs):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return "".join(p.get("text", "") for p in c if isinstance(p, dict))
            return c if isinstance(c, str) else ""
    return ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "evalrun-mock/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        # Headers and body go out in two writes; without TCP_NODELAY, Nagle's algorithm holds
        # the body back until the client's delayed ACK (~40 ms), which would dominate timings.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def leave(self):
        """This request stops counting as in flight (before its answer goes out)."""
        if getattr(self, "counted", False):
            self.counted = False
            st = self.server.state
            with st.lock:
                if self.gen == st.gen:
                    st.active -= 1
                    st.answered += 1
                    st.cond.notify_all()

    def send_json(self, status, obj, extra=None, raw=None):
        self.leave()
        data = raw if raw is not None else json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/_health":
            self.send_json(200, None, raw=b"ok")
        elif batch_request(self, "GET"):
            pass
        else:
            self.send_json(404, {"error": {"message": "no such path"}})

    def do_POST(self):
        if batch_request(self, "POST"):
            return
        st = self.server.state
        try:
            self.post(st)
        finally:
            self.leave()

    def post(self, st):
        n_len = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n_len) if n_len else b""
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError:
            body = None
        script, n, self.gen, inflight = st.next()
        self.counted = True
        path = self.path.rstrip("/")
        if path.endswith("/messages"):
            api = "anthropic"
        elif path.endswith("/chat/completions"):
            api = "openai"
        else:
            api = None
        if api and path not in ("/v1/messages", "/messages", "/v1/chat/completions",
                                "/chat/completions"):
            api = None
        rec = {"n": n, "path": self.path, "port": self.client_address[1],
               "headers": {k.lower(): v for k, v in self.headers.items()},
               "body": body, "t": time.time(), "inflight": inflight}

        # effective behaviour: script, then the matching rule, then fail_first
        eff = dict(script)
        prompt = prompt_of(self.path, body) if isinstance(body, dict) else ""
        answer = script.get("answer", "ok")
        seq = script.get("answers")
        if isinstance(seq, list) and seq:
            answer = seq[min(n, len(seq) - 1)]
        judge = script.get("judge")
        if isinstance(judge, dict):
            answer = judge_answer(judge, prompt)
        for rule in script.get("rules", []) if not isinstance(judge, dict) else []:
            m = re.search(rule.get("match", ""), prompt)
            if m:
                if "answer" in rule:
                    answer = m.expand(rule["answer"])
                for k in ("latency_ms", "status", "mode", "retry_after", "retry_after_date",
                          "after_answered"):
                    if k in rule:
                        eff[k] = rule[k]
                break
        skip = int(script.get("fail_skip", 0))
        if skip <= n < skip + int(script.get("fail_first", 0)):
            fail = script.get("fail", {"status": 500})
            eff.update(fail)
            if "mode" not in fail:
                eff["mode"] = "ok"

        status = int(eff.get("status", 200))
        mode = eff.get("mode", "ok")
        rec["status"] = status if mode != "drop" else 0
        rec["mode"] = mode
        usage = None
        if ("prompt_cache" in script and api and isinstance(body, dict) and status == 200
                and mode == "ok"):
            usage = cache_usage(st, api, body, answer, script["prompt_cache"])
            rec["usage"] = usage
        st.log(rec)

        gate = int(script.get("gate", 0))
        after = int(eff.get("after_answered", 0))
        with st.cond:
            if gate > 0:
                st.cond.wait_for(lambda: st.count >= gate * (n // gate + 1), timeout=10)
            if after > 0:
                st.cond.wait_for(lambda: st.answered >= after, timeout=10)
        lat = float(eff.get("latency_ms", 0)) / 1000.0
        if lat > 0:
            time.sleep(lat)

        if api is None:
            self.send_json(404, {"error": {"message": "unknown path %s" % self.path}})
            return
        if body is None or not isinstance(body, dict):
            self.send_json(400, {"error": {"message": "body is not JSON"}})
            return
        if mode == "drop":
            self.leave()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return

        want_key = script.get("api_key")
        if want_key is not None:
            if api == "anthropic":
                got = self.headers.get("x-api-key")
            else:
                auth = self.headers.get("Authorization") or ""
                got = auth[7:] if auth.startswith("Bearer ") else None
            if got != want_key:
                self.send_json(401, error_body(api, "authentication_error",
                                               "invalid x-api-key"))
                return
        model = body.get("model")
        models = script.get("models")
        if models is not None and model not in models:
            self.send_json(404, error_body(api, "not_found_error", "model: %s" % model))
            return
        bad = reasoning_rejects(api, body)
        if bad:
            self.send_json(400, bad)
            return
        if status != 200:
            extra = {}
            if "retry_after" in eff:
                extra["Retry-After"] = str(eff["retry_after"])
            elif "retry_after_date" in eff:
                extra["Retry-After"] = email.utils.formatdate(
                    time.time() + float(eff["retry_after_date"]), usegmt=True)
            self.send_json(status, error_body(api, "api_error", "scripted status %d" % status),
                           extra)
            return

        out_model = script.get("model_echo", model)
        tokens_in = len(prompt.split()) + 3
        words = answer.split()
        tokens_out = len(words)
        if api == "anthropic":
            obj = {"id": "msg_%d" % n, "type": "message", "role": "assistant",
                   "model": out_model,
                   "content": [{"type": "text", "text": answer}],
                   "stop_reason": "end_turn",
                   "usage": usage or {"input_tokens": tokens_in, "output_tokens": tokens_out}}
            if mode == "empty":
                obj["content"] = []
        else:
            choice = {"index": 0, "message": {"role": "assistant", "content": answer},
                      "finish_reason": "stop"}
            if script.get("logprobs") == "digits" and body.get("logprobs"):
                # one token per number or run of other characters; a 0/1 token gets the other
                # digit as its alternative (p 0.9 for the written one, 0.1 for the other)
                toks = re.findall(r"\d+|\D+", answer)
                choice["logprobs"] = {"content": [
                    {"token": w, "logprob": math.log(0.9) if w in ("0", "1") else 0.0,
                     "top_logprobs": ([{"token": w, "logprob": math.log(0.9)},
                                       {"token": "1" if w == "0" else "0",
                                        "logprob": math.log(0.1)}]
                                      if w in ("0", "1") else [{"token": w, "logprob": 0.0}])}
                    for w in toks]}
            elif script.get("logprobs") and body.get("logprobs"):
                choice["logprobs"] = {"content": [
                    {"token": w, "logprob": -0.25 * i,
                     "top_logprobs": [{"token": w, "logprob": -0.25 * i}]}
                    for i, w in enumerate(words)]}
            if mode == "empty":
                choice["message"]["content"] = None
            obj = {"id": "chatcmpl-%d" % n, "object": "chat.completion", "model": out_model,
                   "choices": [choice],
                   "usage": usage or {"prompt_tokens": tokens_in,
                                      "completion_tokens": tokens_out,
                                      "total_tokens": tokens_in + tokens_out}}
        data = json.dumps(obj).encode("utf-8")
        if mode == "malformed":
            data = b"<html>this is not json</html>"
        elif mode == "truncated":
            data = data[: len(data) // 2]
        self.send_json(200, None, raw=data)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # listen() backlog: must be set before the socket listens

    def handle_error(self, request, client_address):
        # A client that gave up (time-out tests) leaves a broken pipe: not worth a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def reasoning_rejects(api, body):
    """OpenAI's reasoning families (o1, o3, o4-mini, gpt-5...) refuse max_tokens and any
    temperature but 1, with a 400 shaped like OpenAI's; None when the body is acceptable."""
    model = str(body.get("model") or "").rsplit("/", 1)[-1]
    if api != "openai" or not re.match(r"o\d|gpt-5", model):
        return None
    if "max_tokens" in body:
        return {"error": {"message": "Unsupported parameter: 'max_tokens' is not supported "
                          "with this model. Use 'max_completion_tokens' instead.",
                          "type": "invalid_request_error", "param": "max_tokens",
                          "code": "unsupported_parameter"}}
    if "temperature" in body and body["temperature"] != 1:
        return {"error": {"message": "Unsupported value: 'temperature' does not support %s "
                          "with this model. Only the default (1) value is supported."
                          % body["temperature"], "type": "invalid_request_error",
                          "param": "temperature", "code": "unsupported_value"}}
    return None


def error_body(api, kind, msg):
    if api == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": msg}}
    return {"error": {"message": msg, "type": kind, "code": None}}


# ---- the batch interfaces: OpenAI's Batch API (files + batches) and Anthropic's Message
# Batches. A batch's answers are made when it is created, with the script of that moment
# (answer, rules, judge; the reasoning families' 400s per request); the script's "batch"
# object says how it ends: {"ms": time from creation to the end (default 0), "status":
# "completed" (default) | "expired" | "failed" | "cancelled"} -- for Anthropic, expired and
# cancelled end the batch with every request of that type, failed is refused at creation.

BATCH_PATHS = re.compile(r"^(?:/v1)?/(files|batches|messages/batches)(?:/([\w-]+))?"
                         r"(?:/(content|results))?$")


def batch_answer(script, prompt):
    judge = script.get("judge")
    if isinstance(judge, dict):
        return judge_answer(judge, prompt)
    answer = script.get("answer", "ok")
    for rule in script.get("rules", []):
        m = re.search(rule.get("match", ""), prompt)
        if m:
            if "answer" in rule:
                answer = m.expand(rule["answer"])
            break
    return answer


def batch_reply(api, body, n):
    """(status, body) of one request inside a batch."""
    bad = reasoning_rejects(api, body)
    if bad:
        return 400, bad
    script = batch_script()
    prompt = prompt_of("", body)
    answer = batch_answer(script, prompt)
    t_in, t_out = len(prompt.split()) + 3, len(answer.split())
    model = body.get("model")
    if api == "anthropic":
        return 200, {"id": "msg_b%d" % n, "type": "message", "role": "assistant",
                     "model": model, "content": [{"type": "text", "text": answer}],
                     "stop_reason": "end_turn",
                     "usage": {"input_tokens": t_in, "output_tokens": t_out}}
    return 200, {"id": "chatcmpl-b%d" % n, "object": "chat.completion", "model": model,
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                              "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": t_in, "completion_tokens": t_out,
                           "total_tokens": t_in + t_out}}


_batch_script_path = [None]


def batch_script():
    try:
        with open(_batch_script_path[0], encoding="utf-8") as f:
            return json.loads(f.read() or "{}")
    except (OSError, ValueError, TypeError):
        return {}


def multipart_file(handler, raw):
    """The content of the part named "file" of a multipart/form-data body, and its purpose."""
    ctype = handler.headers.get("Content-Type") or ""
    m = re.search(r"boundary=([^;]+)", ctype)
    if not m:
        return None, None
    parts, out, purpose = raw.split(b"--" + m.group(1).strip('"').encode()), None, None
    for part in parts:
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        if b'name="file"' in head:
            out = content
        elif b'name="purpose"' in head:
            purpose = content.decode()
    return out, purpose


def batch_status(b):
    """Moves batch b to its scripted end once its time has come."""
    if b["state"] == "running" and time.time() >= b["ends"]:
        b["state"] = b["end"]


def batch_prompts(st, kind, oid, method, raw):
    """The user prompt of each request of a batch being created (for the log), else None."""
    if method != "POST" or oid or kind == "files":
        return None
    try:
        body = json.loads(raw.decode("utf-8"))
        if kind == "messages/batches":
            return [prompt_of("", r.get("params") or {}) for r in body.get("requests") or []]
        data = st.files.get(body.get("input_file_id")) or b""
        return [prompt_of("", json.loads(l).get("body") or {})
                for l in data.decode("utf-8").splitlines() if l.strip()]
    except (ValueError, AttributeError, TypeError):
        return None


def batch_request(h, method):
    """Serves the batch endpoints; False when the path is not one of them."""
    m = BATCH_PATHS.match(h.path.split("?")[0])
    if not m:
        return False
    st = h.server.state
    _batch_script_path[0] = st.script_path
    with st.lock:
        if not hasattr(st, "batches"):
            st.files, st.batches, st.batch_n = {}, {}, 0
    kind, oid, sub = m.groups()
    n_len = int(h.headers.get("Content-Length") or 0)
    raw = h.rfile.read(n_len) if n_len else b""
    st.log({"n": -1, "path": h.path, "method": method, "port": h.client_address[1],
            "headers": {k.lower(): v for k, v in h.headers.items()}, "body": None,
            "status": 200, "t": time.time(), "batch": True,
            "batch_prompts": batch_prompts(st, kind, oid, method, raw)})
    script = batch_script()
    conf = script.get("batch") if isinstance(script.get("batch"), dict) else {}
    anthropic = kind == "messages/batches"
    want_key = script.get("api_key")
    if want_key is not None:
        got = (h.headers.get("x-api-key") if anthropic else
               (h.headers.get("Authorization") or "")[7:])
        if got != want_key:
            h.send_json(401, error_body("anthropic" if anthropic else "openai",
                                        "authentication_error", "invalid key"))
            return True
    with st.lock:
        st.batch_n += 1
        n = st.batch_n
    if kind == "files" and method == "POST" and not oid:
        data, purpose = multipart_file(h, raw)
        if data is None or purpose != "batch":
            h.send_json(400, error_body("openai", "invalid_request_error",
                                        "expected multipart/form-data with purpose=batch and a file"))
            return True
        fid = "file-%d" % n
        st.files[fid] = data
        h.send_json(200, {"id": fid, "object": "file", "bytes": len(data), "purpose": "batch",
                          "filename": "batch.jsonl", "created_at": int(time.time())})
        return True
    if kind == "files" and method == "GET" and oid and sub == "content":
        if oid not in st.files:
            h.send_json(404, error_body("openai", "not_found_error", "no file %s" % oid))
        else:
            h.send_json(200, None, raw=st.files[oid])
        return True
    if method == "POST" and not oid:
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError:
            h.send_json(400, error_body("openai", "invalid_request_error", "body is not JSON"))
            return True
        end = conf.get("status", "completed")
        b = {"id": ("msgbatch_%d" if anthropic else "batch_%d") % n, "created": time.time(),
             "ends": time.time() + float(conf.get("ms", 0)) / 1000.0, "state": "running",
             "end": end, "results": []}
        if anthropic:
            if end == "failed":
                h.send_json(400, error_body("anthropic", "invalid_request_error",
                                            "scripted batch failure"))
                return True
            for k, r in enumerate(body.get("requests") or []):
                code, resp = batch_reply("anthropic", r.get("params") or {}, k)
                res = ({"type": "succeeded", "message": resp} if code == 200 else
                       {"type": "errored", "error": resp})
                if end in ("expired", "cancelled"):
                    res = {"type": "expired" if end == "expired" else "canceled"}
                b["results"].append({"custom_id": r.get("custom_id"), "result": res})
        else:
            data = st.files.get(body.get("input_file_id"))
            if data is None or body.get("endpoint") != "/v1/chat/completions" or \
                    body.get("completion_window") != "24h":
                h.send_json(400, error_body("openai", "invalid_request_error",
                                            "bad input_file_id, endpoint or completion_window"))
                return True
            for k, line in enumerate(data.decode("utf-8").splitlines()):
                if not line.strip():
                    continue
                r = json.loads(line)
                code, resp = batch_reply("openai", r.get("body") or {}, k)
                b["results"].append({"id": "batch_req_%d" % k, "custom_id": r.get("custom_id"),
                                     "response": {"status_code": code, "request_id": "req_%d" % k,
                                                  "body": resp}, "error": None})
            b["input_file_id"] = body.get("input_file_id")
        st.batches[b["id"]] = b
        h.send_json(200, batch_object(b, anthropic, h))
        return True
    b = st.batches.get(oid)
    if b is None:
        h.send_json(404, error_body("anthropic" if anthropic else "openai", "not_found_error",
                                    "no batch %s" % oid))
        return True
    batch_status(b)
    if anthropic and sub == "results":
        if b["state"] == "running":
            h.send_json(400, error_body("anthropic", "invalid_request_error", "still processing"))
        else:
            h.send_json(200, None, raw="".join(json.dumps(r) + "\n" for r in b["results"]).encode())
        return True
    h.send_json(200, batch_object(b, anthropic, h))
    return True


def batch_object(b, anthropic, h):
    batch_status(b)
    ended = b["state"] != "running"
    n = len(b["results"])
    if anthropic:
        kinds = [r["result"]["type"] for r in b["results"]]
        return {"id": b["id"], "type": "message_batch",
                "processing_status": "ended" if ended else "in_progress",
                "request_counts": {"processing": 0 if ended else n,
                                   "succeeded": kinds.count("succeeded") if ended else 0,
                                   "errored": kinds.count("errored") if ended else 0,
                                   "canceled": kinds.count("canceled") if ended else 0,
                                   "expired": kinds.count("expired") if ended else 0},
                "created_at": "2026-01-01T00:00:00Z", "ended_at": None,
                "expires_at": "2026-01-02T00:00:00Z", "cancel_initiated_at": None,
                "results_url": ("http://%s:%d/v1/messages/batches/%s/results" %
                                (h.server.server_address[0], h.server.server_address[1], b["id"])
                                if ended else None)}
    status = {"running": "in_progress"}.get(b["state"], b["state"])
    obj = {"id": b["id"], "object": "batch", "endpoint": "/v1/chat/completions",
           "input_file_id": b.get("input_file_id"), "completion_window": "24h",
           "status": status, "output_file_id": None, "error_file_id": None, "errors": None,
           "created_at": int(b["created"]),
           "request_counts": {"total": n, "completed": n if status == "completed" else 0,
                              "failed": 0}}
    if status == "failed":
        obj["errors"] = {"object": "list", "data": [{"code": "invalid_request",
                                                     "message": "scripted batch failure",
                                                     "line": None, "param": None}]}
    elif status == "completed":
        ok = [r for r in b["results"] if r["response"]["status_code"] == 200]
        bad = [r for r in b["results"] if r["response"]["status_code"] != 200]
        st = h.server.state
        if ok:
            st.files[b["id"] + "-out"] = "".join(json.dumps(r) + "\n" for r in ok).encode()
            obj["output_file_id"] = b["id"] + "-out"
        if bad:
            st.files[b["id"] + "-err"] = "".join(json.dumps(r) + "\n" for r in bad).encode()
            obj["error_file_id"] = b["id"] + "-err"
    return obj


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--script", required=True)
    ap.add_argument("--log", default="")
    ap.add_argument("--port-file", default="")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.state = State(args.script, args.log)
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    print(port, flush=True)
    try:
        srv.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
