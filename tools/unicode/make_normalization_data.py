#!/usr/bin/env python3
"""Writes the Unicode normalization data that Kangaroo.Core's UnicodeNormalizer (UAX #15) reads, and its test fixture.

The engine runs with .NET's InvariantGlobalization, where string.Normalize leaves non-ASCII text as it is, so
tokenizer.json normalizers (NFC, NFKC, NFD, NFKD) are served by an implementation of our own over this data. Everything
comes from Python's unicodedata (standard library only), so the Unicode version is the one this Python was built with;
the data file states it on its first line. Run from the repository root, with Python 3.11:

    python3 tools/unicode/make_normalization_data.py            # src/Kangaroo.Core/Tokenization/UnicodeNormalization.data
    python3 tools/unicode/make_normalization_data.py --tests    # tests/Kangaroo.Tests/Fixtures/unicode/normalization-tests.txt

Rerun both after moving to a Python whose unicodedata.unidata_version differs, so data and fixture agree. The data
lists only what composition and decomposition need, one record per line, code points in hex:

    c FIRST[..LAST] CCC    canonical combining class (decimal) of each code point in the range; absent means 0
    p C A B                C decomposes canonically to A B, and canonical composition makes C of them (a primary composite)
    d C A [B]              a canonical decomposition that composition does not undo (singletons, exclusions, non-starters)
    k C X [Y ...]          a compatibility decomposition
    d|k FIRST..LAST X      each FIRST+i decomposes to the single code point X+i

Mappings are one level, as UnicodeData.txt gives them; the reader expands them fully. Hangul syllables are algorithmic
and not listed. The fixture holds every code point that some form changes, and random strings of marks, jamo,
accented letters, compatibility and supplementary-plane characters, each with its four forms from unicodedata.normalize.
"""
import argparse
import os
import random
import sys
import unicodedata

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DATA = os.path.join(ROOT, "src", "Kangaroo.Core", "Tokenization", "UnicodeNormalization.data")
TESTS = os.path.join(ROOT, "tests", "Kangaroo.Tests", "Fixtures", "unicode", "normalization-tests.txt")

FORMS = ("NFC", "NFD", "NFKC", "NFKD")
# Where UnicodeNormalizer's fast path stops: text wholly below the bound is returned as it is. Checked in main().
FAST_PATH_BOUNDS = {"NFC": 0x300, "NFD": 0xC0, "NFKC": 0xA0, "NFKD": 0xA0}

S_BASE, S_COUNT = 0xAC00, 11172
L_BASE, V_BASE, T_BASE, L_COUNT, V_COUNT, T_COUNT = 0x1100, 0x1161, 0x11A7, 19, 21, 28


def scalar_values():
    return (cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)


def hexes(text):
    return " ".join(f"{ord(ch):X}" for ch in text)


def read_properties():
    ccc, canonical, compatibility = {}, {}, {}
    for cp in scalar_values():
        ch = chr(cp)
        if unicodedata.combining(ch):
            ccc[cp] = unicodedata.combining(ch)
        mapping = unicodedata.decomposition(ch)
        if not mapping:
            continue
        fields = mapping.split()
        if fields[0].startswith("<"):
            compatibility[cp] = [int(f, 16) for f in fields[1:]]
        else:
            canonical[cp] = [int(f, 16) for f in fields]
    assert not any(S_BASE <= cp < S_BASE + S_COUNT for cp in canonical), "Hangul syllables are meant to be algorithmic"
    assert all(len(m) <= 2 for m in canonical.values())
    # A primary composite: its canonical decomposition is a pair, and NFC gives it back (it is not excluded).
    composites = {cp for cp, m in canonical.items() if len(m) == 2 and unicodedata.normalize("NFC", chr(cp)) == chr(cp)}
    return ccc, canonical, compatibility, composites


def runs(items):
    """(first, last, value) for runs of consecutive code points sharing value."""
    out = []
    for cp, value in sorted(items):
        if out and out[-1][1] == cp - 1 and out[-1][2] == value:
            out[-1][1] = cp
        else:
            out.append([cp, cp, value])
    return out


def write_data():
    ccc, canonical, compatibility, composites = read_properties()
    lines = [f"# Unicode {unicodedata.unidata_version} normalization data for UnicodeNormalizer (UAX #15), from Python's "
             "unicodedata; written by tools/unicode/make_normalization_data.py, which says how to rerun it and what the "
             "records mean.",
             f"version {unicodedata.unidata_version}"]
    for first, last, value in runs(ccc.items()):
        lines.append(f"c {first:X}{'' if first == last else f'..{last:X}'} {value}")

    records = []   # (cp, line) in code point order
    # Single-code-point mappings that step along with their source make ranges: fullwidth forms, math alphanumerics.
    singles = [(cp, ("d" if cp in canonical else "k", m[0] - cp))
               for cp, m in list(canonical.items()) + list(compatibility.items())
               if len(m) == 1 and cp not in composites]
    in_run = set()
    for first, last, (tag, offset) in runs(singles):
        if last > first:
            records.append((first, f"{tag} {first:X}..{last:X} {first + offset:X}"))
            in_run.update(range(first, last + 1))
    for cp, m in canonical.items():
        if cp not in in_run:
            records.append((cp, f"{'p' if cp in composites else 'd'} {cp:X} {' '.join(f'{x:X}' for x in m)}"))
    for cp, m in compatibility.items():
        if cp not in in_run:
            records.append((cp, f"k {cp:X} {' '.join(f'{x:X}' for x in m)}"))
    lines += [line for _, line in sorted(records)]
    write(DATA, lines)


def changed_code_points():
    """Code points that some form changes, Hangul syllables included."""
    for cp in scalar_values():
        ch = chr(cp)
        if any(unicodedata.normalize(form, ch) != ch for form in FORMS):
            yield ch


def fixture_line(source):
    # Empty NFC and NFD fields mean the source itself, empty NFKC and NFKD fields the NFC and NFD ones.
    nfc, nfd, nfkc, nfkd = (unicodedata.normalize(form, source) for form in FORMS)
    return ";".join([hexes(source), "" if nfc == source else hexes(nfc), "" if nfd == source else hexes(nfd),
                     "" if nfkc == nfc else hexes(nfkc), "" if nfkd == nfd else hexes(nfkd)])


def random_strings(count, seed):
    ccc, canonical, compatibility, composites = read_properties()
    rng = random.Random(seed)
    marks = sorted(ccc)
    common_marks = list(range(0x300, 0x370)) + [0x1AB0, 0x1DC0, 0x20D0, 0x302A, 0x3099, 0x309A, 0xFE20, 0x1D165, 0x1D16E]
    firsts = sorted({canonical[c][0] for c in composites})
    seconds = sorted({canonical[c][1] for c in composites})
    precomposed = sorted(composites) + list(range(0xC0, 0x250)) + list(range(0x1E00, 0x1F00)) + list(range(0x1F00, 0x2000))
    letters = ([*range(0x41, 0x5B), *range(0x61, 0x7B), *range(0x391, 0x3AA), *range(0x3B1, 0x3CA), *range(0x410, 0x450)])
    jamo = ([*range(L_BASE, L_BASE + L_COUNT), *range(V_BASE, V_BASE + V_COUNT), *range(T_BASE, T_BASE + T_COUNT),
             *range(0x1113, 0x1160), *range(0xA960, 0xA97D), *range(0xD7B0, 0xD7C7)])
    compat = sorted(compatibility) + [0xA0, 0xB5, 0xBD, 0xFB01, 0xFDFA, 0x2126, 0x212B, 0x3300, 0x1D400, 0x1F100]
    decomposable = sorted(canonical)
    supplementary = ([*range(0x1F600, 0x1F650), *range(0x1F1E6, 0x1F200), *range(0x1F3FB, 0x1F400), 0x1F998, 0x10300,
                      0x20000, 0x2A6D6, 0x2F800, 0x2FA1D, *range(0x1D15E, 0x1D165), *range(0x11099, 0x110AC), 0x1E900,
                      *range(0x1D400, 0x1D420), 0x10FFFD])
    joiners = [0x200D, 0xFE0F, 0xFE0E, 0x34F, 0x20, 0x2E, 0x30, 0x200C]

    def syllable():
        return S_BASE + rng.randrange(S_COUNT)

    pools = [(marks, 3), (common_marks, 4), (firsts, 3), (seconds, 3), (precomposed, 3), (letters, 4), (jamo, 3),
             (compat, 3), (decomposable, 2), (supplementary, 2), (joiners, 1), (None, 2)]
    choices = [p for p, w in pools for _ in range(w)]

    def pick():
        pool = rng.choice(choices)
        return syllable() if pool is None else rng.choice(pool)

    out = []
    for n in range(count):
        shape = n % 4
        if shape == 0:
            # Clusters: a base, then marks in random order, so ordering and blocking are exercised.
            cps = []
            for _ in range(rng.randint(1, 2)):
                cps.append(rng.choice(rng.choice([firsts, letters, precomposed, jamo, decomposable])))
                cluster = [rng.choice(rng.choice([marks, common_marks, seconds])) for _ in range(rng.randint(1, 4))]
                rng.shuffle(cluster)
                cps += cluster
        elif shape == 1:
            # Hangul: jamo sequences that compose, partly, or not at all, beside syllables that take a trailing jamo.
            cps = [rng.choice([rng.randrange(L_BASE, L_BASE + L_COUNT), rng.randrange(V_BASE, V_BASE + V_COUNT),
                               rng.randrange(T_BASE, T_BASE + T_COUNT), syllable(), S_BASE + T_COUNT * rng.randrange(S_COUNT // T_COUNT),
                               rng.choice(marks), rng.choice(jamo)]) for _ in range(rng.randint(1, 6))]
        else:
            cps = [pick() for _ in range(rng.randint(1, 8))]
        out.append("".join(chr(cp) for cp in cps))
    # Long runs of marks: canonical ordering of more marks than an insertion sort is meant for.
    for _ in range(12):
        run = [rng.choice(marks[:40] + common_marks) for _ in range(rng.randint(33, 60))]
        out.append(chr(rng.choice(firsts)) + "".join(chr(cp) for cp in run) + chr(rng.choice(letters)))
    return out


def write_tests():
    lines = [f"# Unicode {unicodedata.unidata_version} normalization cases for UnicodeNormalizerTests, from Python's "
             "unicodedata.normalize; written by tools/unicode/make_normalization_data.py --tests.",
             "# source;NFC;NFD;NFKC;NFKD, each a sequence of code points in hex. An empty NFC or NFD field is the source",
             "# itself, an empty NFKC or NFKD field the NFC or NFD one.",
             f"@version {unicodedata.unidata_version}",
             "@code-points"]
    lines += [fixture_line(ch) for ch in changed_code_points()]
    lines.append("@random")
    lines += [fixture_line(s) for s in random_strings(3000, seed=15)]
    write(TESTS, lines)


def check_fast_path_bounds():
    """Text wholly below a form's bound must be in that form already: the normalizer returns it without looking."""
    ccc, canonical, compatibility, composites = read_properties()
    seconds = {canonical[c][1] for c in composites} | set(range(V_BASE, V_BASE + V_COUNT)) | set(range(T_BASE + 1, T_BASE + T_COUNT))
    for form, bound in FAST_PATH_BOUNDS.items():
        compose = form in ("NFC", "NFKC")
        for cp in range(bound):
            ch = chr(cp)
            decomposed = unicodedata.normalize("NFKD" if "K" in form else "NFD", ch)
            # A starter, unchanged alone, whose decomposition starts with a starter that composes with nothing before it:
            # then no neighbour below the bound can change it, nor it them.
            assert ccc.get(cp, 0) == 0 and unicodedata.normalize(form, ch) == ch, (form, hex(cp))
            assert ccc.get(ord(decomposed[0]), 0) == 0 and not (compose and ord(decomposed[0]) in seconds), (form, hex(cp))
        # Exact: the bound itself is where the form has something to do.
        b = chr(bound)
        assert unicodedata.normalize(form, b) != b or unicodedata.normalize(form, "A" + b) != "A" + b, form


def write(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{os.path.relpath(path, ROOT)}: {len(lines)} lines, {os.path.getsize(path)} bytes, Unicode {unicodedata.unidata_version}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tests", action="store_true", help="write the test fixture instead of the data")
    args = parser.parse_args()
    check_fast_path_bounds()
    if args.tests:
        write_tests()
    else:
        write_data()


if __name__ == "__main__":
    sys.exit(main())
