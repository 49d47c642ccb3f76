#!/usr/bin/env python3
"""Stage 6: evaluation prompts cut deterministically from the held-out package.

Each prompt is a def/class header line of a held-out file plus the next 2-10 lines, 100-600 characters, ending
with a newline, from a file that continues after it; at most 2 prompts per file, no duplicates; a fixed seed picks
them (textdata.cut_prompts). evaluate.py's greedy figures use the first 64 of exactly these prompts.

Writes JSON lines {"id": int, "source": "relative/path.py", "prompt": str}.
"""
from __future__ import annotations

import argparse
import json
import os

from textdata import StageError, cut_prompts, read_documents, run_main

MIN_PROMPTS = 200


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, help="corpus directory (corpus.py)")
    p.add_argument("--out", required=True, help="output .jsonl file")
    p.add_argument("--count", type=int, default=240, help=f"number of prompts (default 240, at least {MIN_PROMPTS})")
    args = p.parse_args()
    if args.count < MIN_PROMPTS:
        raise StageError(f"--count must be at least {MIN_PROMPTS}")

    prompts = cut_prompts(read_documents(args.corpus, "heldout"), args.count)
    if len(prompts) < args.count:
        raise StageError(f"the held-out package yields only {len(prompts)} prompts, {args.count} requested")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for prompt in prompts:
            f.write(json.dumps(prompt, ensure_ascii=False) + "\n")
    lengths = sorted(len(x["prompt"]) for x in prompts)
    print(f"summary: {len(prompts)} prompts from {len({x['source'] for x in prompts})} held-out files, "
          f"{lengths[0]}-{lengths[-1]} chars (median {lengths[len(lengths) // 2]}) -> {args.out}")


if __name__ == "__main__":
    run_main(main)
