#!/usr/bin/python3
"""Draws the scale curve of the corpus pass (issue 19, part 4) as an SVG: time and peak memory
against corpus size, from the TSV tests/bench/scale.sh writes (one line per size:
mult tokens index_s peak_rss_mb). Hand-written SVG (no plotting library needed): two panels
side by side, linear axes from 0 (1x, 4x, 16x the tokens), the points joined, and in the time
panel the straight line through the origin at the largest run's cost per token (what purely
linear time would give), so that a fixed cost shows as the gap at 1x.

  scale_svg.py IN.tsv OUT.svg [TITLE]
"""
import sys


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def panel(x0, y0, w, h, xs, ys, labels, ytitle, color, extra=None):
    out = []
    ymax = max(ys + ([v for v in extra[1]] if extra else [])) * 1.15 or 1.0
    hi = xs[-1] * 1.08

    def px(v):
        return x0 + v / hi * w

    def py(v):
        return y0 + h - v / ymax * h

    out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444"/>')
    for k in range(5):
        v = ymax * k / 4
        yy = py(v)
        out.append(f'<line x1="{x0}" y1="{yy:.1f}" x2="{x0 + w}" y2="{yy:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 6}" y="{yy + 4:.1f}" text-anchor="end" font-size="11">{v:.3g}</text>')
    for v, lab in zip(xs, labels):
        out.append(f'<text x="{px(v):.1f}" y="{y0 + h + 16}" text-anchor="middle" font-size="11">{esc(lab)}</text>')
    out.append(f'<text x="{x0 + w / 2}" y="{y0 + h + 34}" text-anchor="middle" font-size="12">corpus size (tokens)</text>')
    out.append(f'<text x="{x0 - 46}" y="{y0 + h / 2}" text-anchor="middle" font-size="12" '
               f'transform="rotate(-90 {x0 - 46} {y0 + h / 2})">{esc(ytitle)}</text>')
    if extra:
        pts = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(xs, extra[1]))
        out.append(f'<polyline points="{pts}" fill="none" stroke="#999" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x0 + 8}" y="{y0 + 16}" font-size="11" fill="#777">{esc(extra[0])}</text>')
    pts = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(xs, ys))
    out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
    for a, b in zip(xs, ys):
        out.append(f'<circle cx="{px(a):.1f}" cy="{py(b):.1f}" r="4" fill="{color}"/>')
        out.append(f'<text x="{px(a) + 6:.1f}" y="{py(b) - 6:.1f}" font-size="11">{b:.3g}</text>')
    return out


def main():
    rows = []
    with open(sys.argv[1]) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                m, tok, t, mem = line.split()[:4]
                rows.append((int(m), int(tok), float(t), float(mem)))
    rows.sort()
    title = sys.argv[3] if len(sys.argv) > 3 else "evalrun index corpus pass"
    xs = [r[1] for r in rows]
    labels = [f"{r[0]}x ({r[1]:,})" for r in rows]
    per_tok = rows[-1][2] / rows[-1][1]
    W, H = 900, 380
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           f'font-family="sans-serif">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">{esc(title)}</text>']
    out += panel(80, 50, 320, 260, xs, [r[2] for r in rows], labels, "index pass (s)", "#1f6fb4",
                 ("dashed: tokens x the 16x run's cost per token", [v * per_tok for v in xs]))
    out += panel(540, 50, 320, 260, xs, [r[3] for r in rows], labels, "peak RSS (MB)", "#c0392b")
    out.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
