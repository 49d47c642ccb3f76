#!/usr/bin/env python3
"""Stage 1: a Python-source corpus from this interpreter's site-packages, one package held out for evaluation.

Selection rule (deterministic for a given installation):
  * roots: site.getsitepackages() plus sysconfig's purelib (or --roots), as real paths, duplicates removed;
  * every *.py file under them (symlinks resolved, each real file once), sorted by real path; files of 200 bytes to
    1,000,000 bytes that decode as UTF-8 and do not contain U+2581 (SentencePiece's space symbol, which cannot
    round-trip); line endings normalised to "\\n"; byte-identical texts kept once;
  * the whole held-out package (default: sympy; huggingface_hub when sympy is absent - transformers depends on it;
    --heldout NAME[,NAME...] for others, e.g. standard-library packages) goes to heldout.jsonl; a training file whose
    text equals a held-out file's is dropped;
  * the training files are shuffled with random.Random(0) and taken in that order while the total stays within
    --max-bytes (UTF-8 bytes of text; default 150 MB).

Writes OUTDIR/train.jsonl, OUTDIR/heldout.jsonl and OUTDIR/manifest.json.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import site
import sys
import sysconfig
import time
from collections import Counter

from textdata import (HELDOUT_FILE, MANIFEST_FILE, TRAIN_FILE, Document, StageError, command_line, run_main,
                      write_documents, write_json)

HELDOUT_CANDIDATES = ("sympy", "huggingface_hub")
MIN_BYTES = 200
MAX_FILE_BYTES = 1_000_000
SHUFFLE_SEED = 0
# SentencePiece writes a space as U+2581 and decodes every U+2581 as a space: a file that contains the character
# itself could not round-trip, so it is left out.
WHITESPACE_SYMBOL = "\u2581"


def default_roots() -> list[str]:
    return list(site.getsitepackages()) + [sysconfig.get_paths()["purelib"]]


def real_roots(roots: list[str]) -> list[str]:
    out = []
    for r in roots:
        if os.path.isdir(r):
            real = os.path.realpath(r)
            if real not in out:
                out.append(real)
    if not out:
        raise StageError(f"none of the roots exists: {roots}")
    return out


def find_sources(roots: list[str]) -> list[tuple[str, str]]:
    """(real path, path relative to its root) of every .py file, each real file once, sorted by real path.
    A file under nested roots is named relative to the deepest one (so its top-level package is right)."""
    found: dict[str, str] = {}
    for root in sorted(roots, key=len, reverse=True):   # deepest roots first: they claim their files
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in filenames:
                if name.endswith(".py"):
                    full = os.path.join(dirpath, name)
                    real = os.path.realpath(full)
                    if real not in found and os.path.isfile(real):
                        found[real] = os.path.relpath(full, root)
    return sorted(found.items())


def top_package(relpath: str) -> str:
    first = relpath.split(os.sep, 1)[0]
    return first[:-3] if first.endswith(".py") else first


def load(real: str, skipped: Counter) -> str | None:
    """The file's text with LF line endings, or None (counted in skipped by reason)."""
    try:
        size = os.path.getsize(real)
        if size < MIN_BYTES or size > MAX_FILE_BYTES:
            skipped["too_small" if size < MIN_BYTES else "too_large"] += 1
            return None
        with open(real, "rb") as f:
            data = f.read()
    except OSError:
        skipped["unreadable"] += 1
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        skipped["not_utf8"] += 1
        return None
    if WHITESPACE_SYMBOL in text:
        skipped["contains_u2581"] += 1
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def choose_heldout(requested: str, packages: Counter) -> list[str]:
    """The held-out top-level packages: those named (comma-separated), or with "auto" the first installed candidate."""
    if requested != "auto":
        names = [n.strip() for n in requested.split(",") if n.strip()]
        if not names:
            raise StageError(f"--heldout {requested!r} names no package")
        for name in names:
            if packages[name] == 0:
                raise StageError(f"held-out package {name!r} has no usable .py files under the roots")
        return names
    for name in HELDOUT_CANDIDATES:
        if packages[name] > 0:
            return [name]
    raise StageError(f"none of the default held-out packages {HELDOUT_CANDIDATES} is installed; pass --heldout NAME "
                     f"(a top-level package under the roots; standard-library ones such as email exist everywhere, "
                     f"with --roots including sysconfig's stdlib path)")


def summarize(docs: list[Document]) -> dict:
    sizes = [len(d.text.encode("utf-8")) for d in docs]
    per_package: dict[str, list[int]] = {}
    for d, s in zip(docs, sizes):
        entry = per_package.setdefault(d.package, [0, 0])
        entry[0] += 1
        entry[1] += s
    return {
        "files": len(docs),
        "bytes": sum(sizes),
        "chars": sum(len(d.text) for d in docs),
        "packages": {name: {"files": n, "bytes": b} for name, (n, b) in sorted(per_package.items())},
    }


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outdir", help="output directory (created)")
    p.add_argument("--max-bytes", type=int, default=150_000_000, help="cap on training text, UTF-8 bytes (default 150 MB)")
    p.add_argument("--heldout", default="auto",
                   help="top-level package held out for evaluation, or several comma-separated "
                        f"(default: the first installed of {HELDOUT_CANDIDATES})")
    p.add_argument("--roots", nargs="+", help="directories to collect from instead of site-packages (e.g. for a local test)")
    args = p.parse_args()
    started = time.time()

    roots = real_roots(args.roots or default_roots())
    sources = find_sources(roots)
    skipped: Counter = Counter()
    loaded: list[tuple[str, Document]] = []   # (sha256 of the text, document)
    for real, rel in sources:
        text = load(real, skipped)
        if text is not None:
            document = Document(rel.replace(os.sep, "/"), top_package(rel), text)
            loaded.append((hashlib.sha256(text.encode("utf-8")).hexdigest(), document))

    heldout_names = choose_heldout(args.heldout, Counter(d.package for _, d in loaded))
    heldout_name = ",".join(heldout_names)
    # Identical texts are kept once, and a text of the held-out package never appears in training.
    heldout: list[Document] = []
    pool: list[Document] = []
    seen: set[str] = set()
    for held in (True, False):
        for digest, d in loaded:
            if (d.package in heldout_names) != held:
                continue
            if digest in seen:
                skipped["duplicate"] += 1
                continue
            seen.add(digest)
            (heldout if held else pool).append(d)
    random.Random(SHUFFLE_SEED).shuffle(pool)
    train, total = [], 0
    for d in pool:
        size = len(d.text.encode("utf-8"))
        if total + size > args.max_bytes:
            break
        train.append(d)
        total += size
    skipped["over_max_bytes"] = len(pool) - len(train)
    if not train:
        raise StageError("no training files selected (is --max-bytes too small?)")

    os.makedirs(args.outdir, exist_ok=True)
    write_documents(os.path.join(args.outdir, TRAIN_FILE), train)
    write_documents(os.path.join(args.outdir, HELDOUT_FILE), heldout)
    train_summary, heldout_summary = summarize(train), summarize(heldout)
    manifest = {
        "command": command_line(),
        "python": sys.version,
        "platform": platform.platform(),
        "roots": roots,
        "rule": {"extension": ".py", "min_bytes": MIN_BYTES, "max_file_bytes": MAX_FILE_BYTES,
                 "encoding": "utf-8 (strict)", "excluded_char": "U+2581",
                 "newlines": "CRLF and CR normalised to LF", "dedup": "identical texts kept once; held-out texts never in training",
                 "shuffle_seed": SHUFFLE_SEED, "max_bytes": args.max_bytes},
        "heldout_package": heldout_name,
        "candidate_files": len(sources),
        "skipped": dict(sorted(skipped.items())),
        "train": {**{k: v for k, v in train_summary.items() if k != "packages"},
                  "sha256": file_sha256(os.path.join(args.outdir, TRAIN_FILE))},
        "heldout": {**{k: v for k, v in heldout_summary.items() if k != "packages"},
                    "sha256": file_sha256(os.path.join(args.outdir, HELDOUT_FILE))},
        "train_packages": train_summary["packages"],
        "seconds": round(time.time() - started, 1),
    }
    write_json(os.path.join(args.outdir, MANIFEST_FILE), manifest)
    print(f"summary: corpus {len(train)} training files ({total / 1e6:.1f} MB, {len(train_summary['packages'])} packages), "
          f"held out {heldout_name}: {len(heldout)} files ({heldout_summary['bytes'] / 1e6:.1f} MB), "
          f"{manifest['seconds']} s -> {args.outdir}")


if __name__ == "__main__":
    run_main(main)
