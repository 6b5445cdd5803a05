#!/usr/bin/env python3
"""Finds C calls that write a buffer while reading from it (issue 20.4): snprintf(b, n, "%s",
b), memcpy(p, p + 1, n) and the like, which are undefined behaviour. ev_fail() formats aside
first, so ev_fail(err, ..., err->msg) is allowed. Prints FILE:LINE for each; exits 1 if any.
Usage: tests/lint/overlap.py DIR..."""
import os
import re
import sys

# function -> index of the destination argument, index of the first argument it reads
WRITERS = {"snprintf": (0, 2), "vsnprintf": (0, 2), "sprintf": (0, 1), "strcpy": (0, 1),
           "strncpy": (0, 1), "strcat": (0, 1), "strncat": (0, 1), "memcpy": (0, 1),
           "strftime": (0, 2)}


def skip_literal(s, k):
    q = s[k]
    k += 1
    while k < len(s) and s[k] != q:
        k += 2 if s[k] == "\\" else 1
    return k + 1


def calls(src, name):
    for m in re.finditer(r"(?<![\w.>])" + name + r"\s*\(", src):
        i = j = m.end()
        depth = 1
        while depth and j < len(src):
            c = src[j]
            if c in "\"'":
                j = skip_literal(src, j)
                continue
            depth += (c == "(") - (c == ")")
            j += 1
        yield m.start(), src[i:j - 1]


def split_args(s):
    out, depth, cur, k = [], 0, "", 0
    while k < len(s):
        c = s[k]
        if c in "\"'":
            e = skip_literal(s, k)
            cur += s[k:e]
            k = e
            continue
        depth += (c in "([{") - (c in ")]}")
        if c == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += c
        k += 1
    out.append(cur.strip())
    return out


def strip_comments(src):
    src = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), src, flags=re.S)
    return re.sub(r"//[^\n]*", "", src)


def base_of(dest):
    """The buffer a destination names: "err->msg", "e.msg", "buf" (no & or casts)."""
    d = re.sub(r"^\(\s*\w+\s*\*?\s*\)", "", dest.strip()).lstrip("&").strip()
    return d if re.fullmatch(r"[\w.\->\[\]]+", d) else None


def unread(arg):
    """The argument without what it does not read: string literals and sizeof operands."""
    arg = re.sub(r'"(\\.|[^"\\])*"', '""', arg)
    arg = re.sub(r"sizeof\s*\((?:[^()]|\([^()]*\))*\)", "0", arg)
    return re.sub(r"sizeof\s*[\w.\->*\[\]]+", "0", arg)


def main():
    bad = 0
    for root in sys.argv[1:]:
        for dp, _, files in os.walk(root):
            for f in sorted(files):
                if not f.endswith(".c"):
                    continue
                p = os.path.join(dp, f)
                src = strip_comments(open(p, errors="replace").read())
                for name, (di, ri) in WRITERS.items():
                    for pos, body in calls(src, name):
                        a = split_args(body)
                        if len(a) <= ri:
                            continue
                        d = base_of(a[di])
                        if not d:
                            continue
                        pat = re.compile(r"(?<![\w.>])&?" + re.escape(d) + r"(?![\w\[])")
                        for r in a[ri:]:
                            if pat.search(unread(r)):
                                line = src.count("\n", 0, pos) + 1
                                print(f"{p}:{line}: {name}() writes {d} while reading it ({r})")
                                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
