"""CPU cost of the `mentionsMe` trigger filter (shared/notifications/filters.py:mentions) on
Outlook-like HTML bodies: a mention at the top, only a quoted (`x_OWAAM`) mention at the
bottom (the worst case: the whole body is parsed), and no anchor (the substring fast path).

Usage: python benchmarks/mentions.py  (medians of BENCH_RUNS runs, default 7)
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.notifications.filters import mentions

ME = ("alice@contoso.test",)
PARAGRAPH = (
    '<p class="MsoNormal"><span style="font-size:11pt;font-family:Aptos,sans-serif">'
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit &amp; more.</span></p>\n"
)
MENTION = (
    '<a id="OWAAM29C89DAFD5E14DD4AF1FCC5361A59632" href="mailto:alice@contoso.test">'
    '<span style="text-decoration:none">@Alice</span></a>'
)
QUOTED = MENTION.replace('id="OWAAM', 'id="x_OWAAM')


def cpu_ms(body: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.process_time()
        mentions(body, ME)
        times.append((time.process_time() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    runs = int(os.environ.get("BENCH_RUNS", "7"))
    print("| body | mention at top | only a quoted mention | no anchor |")
    print("|---|---|---|---|")
    for size in (50_000, 1_000_000, 4_000_000):
        filler = PARAGRAPH * (size // len(PARAGRAPH))
        cases = (MENTION + filler, filler + QUOTED, filler)
        bodies = [
            {"contentType": "html", "content": f"<html><body>{c}</body></html>"} for c in cases
        ]
        cells = [f"{cpu_ms(body, runs):.2f} ms" for body in bodies]
        print(f"| {size // 1000} KB | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
