#!/usr/bin/env python3
"""Fills an evalrun database (created by `evalrun db init`) with synthetic runs for the
compare/report/review tests, and prints the reference numbers the tests check against,
computed here independently of evalrun (plain Python: means, the paired differences).

Runs (tags):
  spec-a    specificity on SAE A, LLM grades rising with the interval; human grades by
            'alice' (close to the LLM) and 'bob' (noisy)
  spec-a2   the same items on SAE A, every activating score lowered by 1 (a regression)
  spec-a3   the same items and scores as spec-a (no change)
  spec-b    specificity on SAE B (other item keys): distributions only
  compl     completeness (yes/no per concept)
  attr      attribution with ablations, text with HTML/Markdown/CSV metacharacters
  metrics   sae-metrics with a density histogram
  sweep     a 2x2 scaling sweep
  infl      influence: generations + concept/fluency grades
  queue     specificity without a grader: items only (for evalrun review)
Usage: fixture.py DB  -> prints JSON with the reference numbers.
"""
import json, random, sqlite3, struct, sys, time

db = sqlite3.connect(sys.argv[1])
now = int(time.time() * 1000)
rng = random.Random(1234)
EVIL = 'a <script>alert(1)</script> | "quoted", & done'

def run(kind, tag, sae_id, cfg=None):
    cur = db.execute(
        "INSERT INTO runs (kind, tag, status, started_ms, finished_ms, config_json, config_hash,"
        " code_version, host, pid, seed, sae_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (kind, tag, "done", now, now + 1000, json.dumps(cfg or {}), tag, "test", "host", 1, 0,
         sae_id))
    return cur.lastrowid

db.execute("INSERT INTO models (id, hash, path, config_json, created_ms) VALUES"
           " (1, 'm', 'stories260K', '{}', ?)", (now,))
for i, h in ((1, "a" * 64), (2, "b" * 64)):
    db.execute("INSERT INTO saes (id, hash, path, config_json, model_id, created_ms) VALUES"
               " (?, ?, 'sae', '{}', 1, ?)", (i, h, now))
db.execute("INSERT INTO features (sae_id, idx, description, desc_source) VALUES"
           " (1, 7, ?, 'user')", (EVIL,))
db.execute("INSERT INTO features (sae_id, idx, description, desc_source) VALUES"
           " (1, 9, 'names of people', 'user')")

# examples: tokens 1..8, activations rising to the centre
def example(sae, feat, act):
    toks = list(range(1, 9))
    acts = [0, 0, act * 0.2, act * 0.6, act, act * 0.3, 0, 0]
    text = "Once upon a <b>time</b> there | was"
    cur = db.execute(
        "INSERT INTO examples (sae_id, feature_idx, kind, interval, activation, center, tokens,"
        " acts, text) VALUES (?,?,?,?,?,?,?,?,?)",
        (sae, feat, "interval", 0, act, 4, struct.pack("<8i", *toks),
         struct.pack("<8f", *acts), text))
    return cur.lastrowid

K, PER = 4, 3
def spec_items(run_id, sae, feats, keyfmt="f{f}:i{i}:e{e}"):
    items = []
    for f in feats:
        for i in range(K):
            for e in range(PER):
                ex = example(sae, f, (i + 0.5) / K * 2.0)
                key = keyfmt.format(f=f, i=i, e=ex)
                ctx = "Once upon a \u27e6time\u27e7 there"
                db.execute(
                    "INSERT INTO items (run_id, item_key, kind, feature_idx, example_id,"
                    " interval, activation, template, prompt, payload_json, created_ms)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (run_id, key, "interval", f, ex, i, (i + 0.5) / K * 2.0, "specificity",
                     "p", json.dumps({"context": ctx, "max_activation": 2.0}), now))
                items.append((key, "interval", i, f))
        for e in range(PER):
            ex = example(sae, f, 0.0)
            key = "f%d:n:e%d" % (f, ex)
            db.execute(
                "INSERT INTO items (run_id, item_key, kind, feature_idx, example_id, interval,"
                " activation, template, prompt, payload_json, created_ms)"
                " VALUES (?,?,?,?,?,NULL,0,?,?,?,?)",
                (run_id, key, "nonactivating", f, ex, "specificity", "p",
                 json.dumps({"context": "Once upon a time there"}), now))
            items.append((key, "nonactivating", None, f))
    return items

def grade(run_id, key, feat, score, kind="llm", name="openai:mock", status="ok"):
    db.execute(
        "INSERT INTO grades (run_id, item_key, sae_id, feature_idx, grader_kind, grader_name,"
        " score, parse_status, raw_answer, created_ms) VALUES (?,?,1,?,?,?,?,?,?,?)",
        (run_id, key, feat, kind, name, score, status, "Score: %s" % score, now))

ref = {}
cfg = {"intervals": K, "per_interval": PER}
ra = run("specificity", "spec-a", 1, cfg)
items = spec_items(ra, 1, [7, 9])
# the same item keys in the sibling runs (same SAE, same examples)
ra2 = run("specificity", "spec-a2", 1, cfg)
ra3 = run("specificity", "spec-a3", 1, cfg)
llm = {}
for key, kind, iv, f in items:
    s = min(3, iv + rng.choice([0, 0, 1])) if kind == "interval" else rng.choice([0, 0, 1])
    llm[key] = s
for r, delta in ((ra, 0), (ra2, -1), (ra3, 0)):
    for key, kind, iv, f in items:
        db.execute("INSERT INTO items (run_id, item_key, kind, feature_idx, interval,"
                   " created_ms) SELECT ?, item_key, kind, feature_idx, interval, created_ms"
                   " FROM items WHERE run_id = ? AND item_key = ?", (r, ra, key)) if r != ra else None
        s = llm[key] + (delta if kind == "interval" else 0)
        grade(r, key, f, max(0, s))
act = [k for k, kind, iv, f in items if kind == "interval"]
a = [llm[k] for k in act]
a2 = [max(0, llm[k] - 1) for k in act]
ref["spec_mean_a"] = sum(a) / len(a)
ref["spec_mean_a2"] = sum(a2) / len(a2)
ref["spec_share3_a"] = sum(1 for v in a if v == 3) / len(a)
ref["n_act"] = len(act)
# feature categories (evalrun tag): 7 and 9 are 'people', 7 also 'stories'
for f, c in ((7, "people"), (9, "people"), (7, "stories")):
    db.execute("INSERT INTO feature_tags (sae_id, feature_idx, category, created_ms) VALUES"
               " (1, ?, ?, ?)", (f, c, now))
ref["people_mean"] = sum(llm[k] for k, kind, iv, f in items if kind == "interval") / \
    sum(1 for k, kind, iv, f in items if kind == "interval")
ref["stories_mean"] = sum(llm[k] for k, kind, iv, f in items if kind == "interval" and f == 7) / \
    sum(1 for k, kind, iv, f in items if kind == "interval" and f == 7)
# humans on spec-a: alice = LLM except every 5th item +1 (clipped); bob random
alice, bob = {}, {}
for j, (key, kind, iv, f) in enumerate(items):
    alice[key] = min(3, llm[key] + (1 if j % 5 == 0 else 0))
    bob[key] = rng.randint(0, 3)
    grade(ra, key, f, alice[key], "human", "alice")
    grade(ra, key, f, bob[key], "human", "bob")
ref["alice_llm_keys"] = len(items)
# spec-b: other SAE, slightly better distribution
rb = run("specificity", "spec-b", 2, cfg)
itb = spec_items(rb, 2, [3])
for key, kind, iv, f in itb:
    grade(rb, key, f, min(3, iv + 1) if kind == "interval" else 0)
ref["spec_mean_b"] = sum(min(3, iv + 1) for k, kind, iv, f in itb if kind == "interval") / \
    sum(1 for k, kind, iv, f in itb if kind == "interval")

# completeness
rc = run("completeness", "compl", 1)
yes = 0
for j, c in enumerate(["a girl named Lily", "the sea", "cats", EVIL]):
    key = "c:" + c
    db.execute("INSERT INTO items (run_id, item_key, kind, payload_json, created_ms) VALUES"
               " (?,?,?,?,?)", (rc, key, "concept", json.dumps(
                   {"concept": c, "features": [{"feature": 7 + j, "activation": 1.5,
                                                "description": None}]}), now))
    v = 1 if j % 2 == 0 else 0
    yes += v
    grade(rc, key, None, v)
ref["coverage"] = yes / 4

# attribution: effect = -attr + noise
rt = run("attribution", "attr", 1)
xs, ys = [], []
for p in range(2):
    db.execute("INSERT INTO attribution_prompts (run_id, prompt_idx, name, prompt, target,"
               " contrast, target_id, contrast_id, n_tokens, logit_diff, attr_features,"
               " attr_error, attr_bias, pearson, spearman, created_ms) VALUES"
               " (?,?,?,?,?,?,1,2,5,?,?,?,0,0.9,0.8,?)",
               (rt, p, "prompt_%d" % p, EVIL, " he", " she", 3.0 + p, 0.5, -0.2, now))
    for r_ in range(12):
        at = rng.uniform(-1, 1)
        eff = -at + rng.gauss(0, 0.1)
        xs.append(-at); ys.append(eff)
        db.execute("INSERT INTO attributions (run_id, prompt_idx, feature_idx, position,"
                   " token_id, token_text, activation, attribution, rank, ablation_effect)"
                   " VALUES (?,?,?,?,?,?,?,?,?,?)",
                   (rt, p, 100 + r_, r_, 5, '" <b>', 1.0, at, r_ + 1, eff))
def pearson(x, y):
    n = len(x); mx = sum(x) / n; my = sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x); syy = sum((b - my) ** 2 for b in y)
    return sxy / (sxx * syy) ** 0.5
ref["attr_pearson"] = pearson(xs, ys)

# sae-metrics
rm = run("sae-metrics", "metrics", 1)
hist = [0, 0, 0, 1, 3, 8, 20, 45, 80, 120, 150, 110, 60, 20, 5, 1]
db.execute("INSERT INTO sae_metrics (run_id, sae_id, sae_hash, n_tokens, l0, l1, mse,"
           " explained_variance, fvu, dead_frac, density_hist, ce_clean, ce_sae, ce_zero,"
           " ce_loss_score, created_ms) VALUES (?,1,?,4096,12.5,3.0,0.1,0.9,0.1,0.05,?,"
           " 1.0,1.2,3.0,0.9,?)", (rm, "a" * 64, json.dumps({"bin_lo": [-8 + 0.5 * b for b in
           range(16)], "count": hist, "dead": 7}), now))  # as sae_metrics_hist_json() writes
# sweep
rs = run("sweep", "sweep", None)
for d in (256, 512):
    for t in (10000, 40000):
        db.execute("INSERT INTO sae_sweep (run_id, d_sae, n_tokens, l1, loss, mse, l0, fvu,"
                   " dead_frac, flops, train_s) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                   (rs, d, t, 5.0, 1.0 / (d * t) ** 0.3, 0.1, 20, 0.2, 0.01, 6.0 * d * t * 64,
                    1.5))
# influence
ri = run("influence", "infl", 1)
for p in range(2):
    db.execute("INSERT INTO generations (run_id, item_key, prompt_idx, prompt, seed, tokens,"
               " text, created_ms) VALUES (?,?,?,?,0,x'',?,?)",
               (ri, "base/p%d" % p, p, "Once upon a time", " there was a girl.", now))
    for sc in (5, 10):
        key = "f7/s%d/p%d" % (sc, p)
        db.execute("INSERT INTO generations (run_id, item_key, prompt_idx, prompt, feature_idx,"
                   " scale, max_act, clamp_value, seed, tokens, text, created_ms) VALUES"
                   " (?,?,?,?,7,?,2.0,?,0,x'',?,?)",
                   (ri, key, p, "Once upon a time", sc, 2.0 * sc, EVIL, now))
        for part, s in (("concept", 2 if sc == 5 else 3), ("fluency", 3 if sc == 5 else 1)):
            db.execute("INSERT INTO items (run_id, item_key, kind, feature_idx, payload_json,"
                       " created_ms) VALUES (?,?,?,7,?,?)",
                       (ri, key + "/" + part, "influence_" + part, json.dumps(
                           {"generation": key, "baseline": "base/p%d" % p, "scale": sc}), now))
            grade(ri, key + "/" + part, 7, s)
# a queue: specificity without grades
rq = run("specificity", "queue", 1, cfg)
spec_items(rq, 1, [7])
db.commit()
print(json.dumps(ref))
