"""A stacked bar chart as inline SVG (pure): blocks, hides and warnings per time bucket.

No script: each bar has a `<title>`, which browsers show on hover. Sizes are in the SVG's own
units and the chart scales to its container.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from html import escape

WIDTH = 960
HEIGHT = 240
LEFT = 48  # room for the y axis labels
BOTTOM = 28  # room for the x axis labels
TOP = 12
COLORS = {"block": "#c62828", "hide": "#ef6c00", "warn": "#f9a825"}
ORDER = ("block", "hide", "warn")  # bottom to top
X_LABELS = 6  # dates written under the axis at most


def nice_max(value: int) -> int:
    """The y axis top: `value` rounded up to 1, 2 or 5 times a power of ten (pure)."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def bucket_label(start: float, bucket_hours: int) -> str:
    fmt = "%b %d" if bucket_hours >= 24 else "%b %d %H:%M"
    return time.strftime(fmt, time.gmtime(start))


def stacked_bars(series: Mapping[str, Sequence[int]], since: float, bucket_hours: int) -> str:
    """The chart of `series` (action -> counts per bucket, oldest first, starting `since`)."""
    buckets = max((len(v) for v in series.values()), default=0)
    totals = [sum(series.get(a, [0] * buckets)[i] for a in ORDER) for i in range(buckets)]
    top = nice_max(max(totals, default=0))
    plot_w = WIDTH - LEFT - 8
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / buckets if buckets else plot_w
    bar = max(1.0, slot * 0.8)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet">',
        "<title>Blocks, hides and warnings over time</title>",
    ]
    for i in range(5):  # grid lines and y labels
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{value:g}</text>"
        )
    seconds = bucket_hours * 3600
    every = max(1, -(-buckets // X_LABELS))
    for i in range(buckets):
        x = LEFT + i * slot + (slot - bar) / 2
        y = TOP + plot_h
        start = since + i * seconds
        label = bucket_label(start, bucket_hours)
        counts = {a: series.get(a, [0] * buckets)[i] for a in ORDER}
        tip = escape(f"{label}: " + ", ".join(f"{counts[a]} {a}" for a in ORDER))
        parts.append(f'<g class="bar" data-bucket="{i}"><title>{tip}</title>')
        for action in ORDER:
            n = counts[action]
            if n <= 0:
                continue
            h = plot_h * n / top
            y -= h
            parts.append(
                f'<rect class="{action}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{COLORS[action]}" data-count="{n}"/>'
            )
        parts.append("</g>")
        if i % every == 0:
            parts.append(
                f'<text class="axis" x="{x + bar / 2:.1f}" y="{HEIGHT - 8}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append(
        f'<line class="base" x1="{LEFT}" x2="{WIDTH - 8}" y1="{TOP + plot_h}" y2="{TOP + plot_h}"/>'
    )
    parts.append("</svg>")
    return "".join(parts)
