#!/usr/bin/env python3
"""Stage 2: a SentencePiece BPE tokenizer (Llama format) for Python code, with an exact round trip.

Normalization is the identity and nothing is added or removed (no dummy prefix, no whitespace folding), so
indentation, tabs, blank lines and trailing spaces survive: spaces become U+2581 and may merge into
whitespace-only pieces (indentation runs), digits are split one by one. spm_train reads one sentence per line,
so the code is fed line by line: a newline is never inside a piece and encodes as the byte-fallback piece <0x0A>
(as do characters outside the 99.95% character coverage, as their UTF-8 bytes).

Deterministic: the training lines are those of the first --train-bytes of training documents in corpus order (which
corpus.py shuffled with a fixed seed): no sampling, no shuffling here, so no random seed is involved; the pieces do
not depend on the thread count.

Writes OUTDIR/tokenizer.model, tokenizer_config.json, parity.jsonl (held-out snippets with their ids, without BOS,
for the C# tokenizer tests) and tokenizer_log.json. Fails if any held-out document does not round-trip exactly.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import time

from textdata import (StageError, command_line, encode_texts, read_documents, run_main, write_json)

# spm_train skips sentences longer than this many bytes (its --max_sentence_length default); filtering them here
# keeps its log quiet and makes the skipped count visible.
MAX_LINE_BYTES = 4192
PARITY_SEED = 0

# Cases the random snippets may miss: tabs, trailing spaces, whitespace-only lines, carriage returns, digits, text
# beyond the character coverage, empty lines at the ends. (U+2581, SentencePiece's space symbol, is not among them:
# it decodes as a space, so no text containing it round-trips; corpus.py leaves such files out.)
EDGE_CASES = [
    "\n",
    "\n\n\n",
    "    \n",
    "\tif x:\n\t\treturn 1\n",
    "def f(a, b):  \n    return a + b   \n",
    "x = 1234567890 + 3.14e-10\n",
    "s = 'caf\u00e9 \u00fcber na\u00efve'\n",
    "# \u65e5\u672c\u8a9e\u306e\u30b3\u30e1\u30f3\u30c8 \U0001f998\n",
    "line\r\nwith carriage return\r\n",
    "  \t  mixed \t indent\n",
    "class A:\n\n\n    pass",
]


def training_lines(docs) -> tuple[list[str], int]:
    lines, skipped = [], 0
    for d in docs:
        for line in d.text.split("\n"):
            if not line:
                continue
            if len(line.encode("utf-8")) > MAX_LINE_BYTES:
                skipped += 1
                continue
            lines.append(line)
    return lines, skipped


def train_model(lines: list[str], vocab: int, threads: int) -> bytes:
    import io
    import sentencepiece as spm
    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=writer,
        model_type="bpe", vocab_size=vocab, byte_fallback=True, character_coverage=0.9995,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=False,
        split_digits=True, allow_whitespace_only_pieces=True, max_sentence_length=MAX_LINE_BYTES,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        input_sentence_size=0, shuffle_input_sentence=False, num_threads=threads,
        minloglevel=2)
    return writer.getvalue()


def check_specials(sp) -> None:
    expected = {0: "<unk>", 1: "<s>", 2: "</s>"}
    for i, piece in expected.items():
        if sp.id_to_piece(i) != piece:
            raise StageError(f"id {i} is {sp.id_to_piece(i)!r}, expected {piece!r}")
    newline = sp.encode("\n")
    if newline != [sp.piece_to_id("<0x0A>")]:
        raise StageError(f"'\\n' encodes as {[sp.id_to_piece(i) for i in newline]}, expected the byte piece <0x0A>")


def round_trip(sp, model_file: str, docs, workers: int) -> tuple[int, int]:
    """(characters, tokens) over docs; raises on the first document whose decode differs from its text."""
    encoded = encode_texts(model_file, [d.text for d in docs], workers)
    for d, ids in zip(docs, encoded):
        back = sp.decode(ids.tolist())
        if back != d.text:
            at = next((i for i, (a, b) in enumerate(zip(back, d.text)) if a != b), min(len(back), len(d.text)))
            raise StageError(f"round trip failed for {d.path} at character {at}: "
                             f"{d.text[max(0, at - 20):at + 20]!r} came back as {back[max(0, at - 20):at + 20]!r}")
    return sum(len(d.text) for d in docs), sum(len(a) for a in encoded)


def parity_snippets(docs, count: int) -> list[str]:
    """`count` distinct slices of 1-40 whole lines of held-out documents, half of them without the last newline."""
    rng = random.Random(PARITY_SEED)
    docs = sorted(docs, key=lambda d: d.path)
    snippets, seen = [], set()
    for _ in range(count * 20):
        if len(snippets) == count:
            break
        lines = rng.choice(docs).text.splitlines(keepends=True)
        n = rng.randint(1, min(40, len(lines)))
        start = rng.randint(0, len(lines) - n)
        text = "".join(lines[start:start + n])
        if rng.random() < 0.5:
            text = text.removesuffix("\n")
        if text and text not in seen:
            seen.add(text)
            snippets.append(text)
    return snippets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", help="corpus directory (corpus.py output)")
    p.add_argument("outdir", help="output directory (created)")
    p.add_argument("--vocab", type=int, default=8000, help="vocabulary size, special and byte pieces included (default 8000)")
    # BPE training time grows linearly with the text (~2 s per MB here, little helped by threads); the first 50 MB of
    # the shuffled training files are a fair sample of all of them.
    p.add_argument("--train-bytes", type=int, default=50_000_000,
                   help="train on the first N bytes of training documents, 0 for all (default 50 MB)")
    # The pieces do not depend on the thread count, but the model file records it: a fixed default keeps the file
    # byte-identical across machines.
    p.add_argument("--threads", type=int, default=16, help="spm_train threads (default 16)")
    p.add_argument("--parity", type=int, default=200, help="held-out snippets in parity.jsonl (default 200)")
    p.add_argument("--workers", type=int, default=0, help="encoding processes (default: one per core)")
    args = p.parse_args()
    started = time.time()
    if args.vocab < 300:
        raise StageError("--vocab must be at least 300 (3 special + 256 byte pieces + merges)")

    train_docs = read_documents(args.corpus, "train", args.train_bytes)
    heldout_docs = read_documents(args.corpus, "heldout")
    lines, long_lines = training_lines(train_docs)
    print(f"training BPE (vocab {args.vocab}) on {len(lines)} lines of {len(train_docs)} files", flush=True)
    proto = train_model(lines, args.vocab, args.threads)
    train_seconds = time.time() - started

    os.makedirs(args.outdir, exist_ok=True)
    model_file = os.path.join(args.outdir, "tokenizer.model")
    with open(model_file, "wb") as f:
        f.write(proto)
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=model_file)
    if sp.get_piece_size() != args.vocab:
        raise StageError(f"the model has {sp.get_piece_size()} pieces, expected {args.vocab}")
    check_specials(sp)

    held_chars, held_tokens = round_trip(sp, model_file, heldout_docs, args.workers)
    sample = read_documents(args.corpus, "train", 20_000_000)
    train_chars, train_tokens = round_trip(sp, model_file, sample, args.workers)

    snippets = parity_snippets(heldout_docs, args.parity) + EDGE_CASES
    with open(os.path.join(args.outdir, "parity.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for text in snippets:
            ids = sp.encode(text)
            if sp.decode(ids) != text:
                raise StageError(f"parity snippet does not round-trip: {text!r}")
            f.write(json.dumps({"text": text, "ids": ids}, ensure_ascii=False) + "\n")

    write_json(os.path.join(args.outdir, "tokenizer_config.json"), {
        "add_bos_token": True, "add_eos_token": False,
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "tokenizer_class": "LlamaTokenizer", "legacy": True, "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
    })
    log = {
        "command": command_line(),
        "sentencepiece": spm.__version__,
        "vocab": args.vocab,
        "model_sha256": hashlib.sha256(proto).hexdigest(),
        "training": {"files": len(train_docs), "lines": len(lines), "lines_over_max_bytes": long_lines,
                     "bytes": sum(len(d.text.encode("utf-8")) for d in train_docs), "threads": args.threads,
                     "seconds": round(train_seconds, 1)},
        "heldout_round_trip": {"files": len(heldout_docs), "chars": held_chars, "tokens": held_tokens,
                               "chars_per_token": round(held_chars / held_tokens, 3), "exact": True},
        "train_sample": {"files": len(sample), "chars": train_chars, "tokens": train_tokens,
                         "chars_per_token": round(train_chars / train_tokens, 3)},
        "parity_lines": len(snippets),
        "seconds": round(time.time() - started, 1),
    }
    write_json(os.path.join(args.outdir, "tokenizer_log.json"), log)
    print(f"summary: tokenizer vocab {args.vocab}, trained in {train_seconds:.1f} s; held-out round trip exact over "
          f"{len(heldout_docs)} files, {log['heldout_round_trip']['chars_per_token']} chars/token "
          f"(train sample {log['train_sample']['chars_per_token']}); {len(snippets)} parity lines -> {args.outdir}")


if __name__ == "__main__":
    run_main(main)
