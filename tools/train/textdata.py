"""Corpus files, token streams and prompts shared by every stage (no torch, no transformers).

Corpus format: a corpus directory holds `train.jsonl` and `heldout.jsonl`, one JSON object per line and per source
file: {"path": "pkg/mod.py", "package": "pkg", "text": "..."}. JSON lines need no document separator that code could
contain. Documents keep their exact text apart from line endings, which corpus.py turns into "\n".
"""
from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import shlex
import sys
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

TRAIN_FILE = "train.jsonl"
HELDOUT_FILE = "heldout.jsonl"
MANIFEST_FILE = "manifest.json"
TOKENIZER_MODEL = "tokenizer.model"

SEQ_LEN = 512          # tokens per training row
EVAL_ROWS = 200        # held-out rows every stage evaluates on
EVAL_ROWS_SEED = 1234  # which held-out rows those are
PROMPT_SEED = 0        # prompts.py and evaluate.py cut the same prompts


class StageError(Exception):
    """A user-facing failure: main() prints the message and exits with status 2, no traceback."""


@dataclass(frozen=True)
class Document:
    path: str      # relative to the site-packages root it came from
    package: str   # top-level package (or module) name
    text: str


def run_main(main) -> None:
    """Runs a stage's main(), turning StageError into one line on stderr and exit status 2."""
    try:
        main()
    except StageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def command_line() -> str:
    """The exact command that is running, for the logs."""
    return shlex.join([sys.executable] + sys.argv)


def replay_command(steps: int) -> str:
    """This command with --seconds/--steps replaced by `--steps steps`: replays a timed run's schedule exactly."""
    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a in ("--seconds", "--steps"):
            skip = True
        elif not a.startswith(("--seconds=", "--steps=")):
            argv.append(a)
    return shlex.join([sys.executable, sys.argv[0]] + argv + ["--steps", str(steps)])


def write_json(path: str, value) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise StageError(f"{path} not found") from None
    except json.JSONDecodeError as e:
        raise StageError(f"{path} is not valid JSON: {e}") from None


def write_documents(path: str, docs: Sequence[Document]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for d in docs:
            f.write(json.dumps({"path": d.path, "package": d.package, "text": d.text}, ensure_ascii=False))
            f.write("\n")


def iter_documents(path: str) -> Iterator[Document]:
    if not os.path.exists(path):
        raise StageError(f"{path} not found (run corpus.py first)")
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                o = json.loads(line)
                yield Document(o["path"], o["package"], o["text"])
            except (json.JSONDecodeError, KeyError) as e:
                raise StageError(f"{path}:{number}: not a corpus record ({e})") from None


def read_documents(corpus_dir: str, split: str, max_bytes: int = 0) -> list[Document]:
    """The documents of split "train" or "heldout", in file order; with max_bytes, only the first ones up to that size."""
    name = {"train": TRAIN_FILE, "heldout": HELDOUT_FILE}[split]
    docs, total = [], 0
    for d in iter_documents(os.path.join(corpus_dir, name)):
        size = len(d.text.encode("utf-8"))
        if max_bytes and total + size > max_bytes:
            break
        docs.append(d)
        total += size
    if not docs:
        raise StageError(f"no documents in {os.path.join(corpus_dir, name)}")
    return docs


def tokenizer_path(directory: str) -> str:
    path = os.path.join(directory, TOKENIZER_MODEL)
    if not os.path.exists(path):
        raise StageError(f"{path} not found (run tokenizer.py first, or give a model directory that has one)")
    return path


def load_tokenizer(directory: str):
    import sentencepiece as spm
    return spm.SentencePieceProcessor(model_file=tokenizer_path(directory))


# --- encoding, in worker processes ------------------------------------------------------------------------------

_worker_sp = None


def _init_worker(model_file: str) -> None:
    global _worker_sp
    import sentencepiece as spm
    _worker_sp = spm.SentencePieceProcessor(model_file=model_file)


def _encode_chunk(texts: list[str]) -> list[np.ndarray]:
    return [np.asarray(_worker_sp.encode(t), dtype=np.int32) for t in texts]


def encode_texts(model_file: str, texts: Sequence[str], workers: int = 0) -> list[np.ndarray]:
    """Token ids of each text (no BOS/EOS), in order, encoded by `workers` processes (0: one per core).

    Uses fork: call it before CUDA is initialised (every stage encodes before it builds a model on the GPU).
    """
    workers = workers or os.cpu_count() or 1
    chunk = 64
    chunks = [list(texts[i:i + chunk]) for i in range(0, len(texts), chunk)]
    if workers == 1 or len(chunks) <= 1:
        _init_worker(model_file)
        return [a for c in chunks for a in _encode_chunk(c)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(model_file,)) as pool:
        return [a for part in pool.imap(_encode_chunk, chunks) for a in part]


def pack_rows(encoded: Sequence[np.ndarray], bos: int, eos: int, seq_len: int = SEQ_LEN) -> np.ndarray:
    """Documents as BOS + ids + EOS, concatenated in order and cut into rows of seq_len tokens (the tail is dropped)."""
    total = sum(len(a) + 2 for a in encoded)
    stream = np.empty(total, dtype=np.int32)
    at = 0
    for a in encoded:
        stream[at] = bos
        stream[at + 1:at + 1 + len(a)] = a
        stream[at + 1 + len(a)] = eos
        at += len(a) + 2
    rows = total // seq_len
    if rows == 0:
        raise StageError(f"only {total} tokens: not even one row of {seq_len}")
    return stream[:rows * seq_len].reshape(rows, seq_len)


def token_rows(corpus_dir: str, split: str, model_file: str, max_bytes: int = 0, workers: int = 0) -> np.ndarray:
    """Rows [n, SEQ_LEN] (int32) of a corpus split, tokenized with model_file."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=model_file)
    if sp.bos_id() < 0 or sp.eos_id() < 0:
        raise StageError(f"{model_file} has no BOS or EOS piece")
    docs = read_documents(corpus_dir, split, max_bytes)
    return pack_rows(encode_texts(model_file, [d.text for d in docs], workers), sp.bos_id(), sp.eos_id())


def eval_row_indices(n_rows: int, count: int = EVAL_ROWS, seed: int = EVAL_ROWS_SEED) -> np.ndarray:
    """The fixed held-out rows every stage reports on: `count` distinct rows drawn with a fixed seed, sorted."""
    if n_rows <= count:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=count, replace=False))


# --- prompts ----------------------------------------------------------------------------------------------------

_HEADER = re.compile(r"^[ \t]*(?:async[ \t]+def|def|class)[ \t]+\w")


def cut_prompts(docs: Sequence[Document], count: int, seed: int = PROMPT_SEED,
                min_chars: int = 100, max_chars: int = 600, per_file: int = 2) -> list[dict]:
    """Deterministic code prompts: a def/class header line plus the next 2-10 lines, 100-600 characters, ending with a
    newline, from a document that continues after the prompt (so a continuation exists). Files are visited in a
    seeded random order, one random header each, for up to `per_file` passes (so files with thousands of functions
    do not dominate); duplicate texts are skipped. Returns [{"id", "source", "prompt"}], ids 0..n-1 in that order.
    The first k prompts do not depend on `count`.
    """
    docs = sorted(docs, key=lambda d: d.path)
    rng = random.Random(seed)
    files = []
    for d in docs:
        lines = d.text.split("\n")
        headers = [i for i, line in enumerate(lines) if _HEADER.match(line)]
        if headers:
            files.append((d.path, lines, headers))
    rng.shuffle(files)
    seen: set[str] = set()
    prompts: list[dict] = []
    for _ in range(per_file):
        for path, lines, headers in files:
            if len(prompts) == count:
                return prompts
            i = rng.choice(headers)
            extra = rng.randint(2, 10)
            # The prompt is lines[i : i+1+extra] plus "\n": shorten until it fits; some text must follow it.
            while extra > 1 and len("\n".join(lines[i:i + 1 + extra])) + 1 > max_chars:
                extra -= 1
            end = i + 1 + extra
            if end >= len(lines) or not "".join(lines[end:]).strip():
                continue
            text = "\n".join(lines[i:end]) + "\n"
            if min_chars <= len(text) <= max_chars and text not in seen:
                seen.add(text)
                prompts.append({"id": len(prompts), "source": path, "prompt": text})
    return prompts
