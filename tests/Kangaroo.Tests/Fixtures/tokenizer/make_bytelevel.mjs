// Regenerates the byte-level BPE tokenizer.json fixtures and the ids/decodes that transformers.js gives for them.
//
//   cd /tmp/tok && npm install @huggingface/transformers@4.3.2
//   NODE_PATH=/tmp/tok/node_modules node tests/Kangaroo.Tests/Fixtures/tokenizer/make_bytelevel.mjs
//
// Two tokenizers trained here on fixture_text.py's corpus by a plain BPE trainer (most frequent byte-level pair first,
// ties broken by the pair's text), written in the layouts the real files use:
//   bytelevel-llama3  Llama 3's: its split regex, ignore_merges, special tokens, a template that adds <|begin_of_text|>;
//   bytelevel-qwen2   Qwen2's: NFC normalizer, digits split one by one, no template (no BOS), merges as arrays.
// transformers.js (an independent implementation of Hugging Face tokenizers, in JavaScript) gives the expectations;
// tests/gpu/tokenizer_parity.py checks the same files against the Python `tokenizers` library on the GPU machine.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { PreTrainedTokenizer } = require(require.resolve("@huggingface/transformers", { paths: (process.env.NODE_PATH || "").split(":") }));

const here = dirname(fileURLToPath(import.meta.url));
const python = (mode) => execFileSync("python3", [join(here, "fixture_text.py"), mode], { encoding: "utf8", maxBuffer: 1 << 28 });
// The corpus, plus lines that make merges inside contractions and characters beyond the BMP, so that where a word
// boundary falls there (a regex reading surrogates, not code points, would move it) changes the ids.
const corpus = [...python("corpus").split("\n").filter((l) => l.length > 0),
  ...Array(40).fill("it's what's that's he's 𐌀𐌁𐌂 𐌀's 𝟎𝟏𝟐𝟑 𝟒𝟓𝟔 🦘🦘 🦘's")];
const texts = python("texts").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));

const LLAMA3 = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2 = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
// JavaScript (Node 20) has no inline (?i:...) group: the same contractions, case-insensitive by hand, for training only.
const forJs = (pattern) => new RegExp(pattern.replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)", "'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]"), "gu");

// GPT-2's byte alphabet.
const byteChars = [];
{
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    byteChars.push(String.fromCodePoint(printable ? b : next++));
  }
}
const toByteLevel = (s) => Array.from(Buffer.from(s, "utf8"), (b) => byteChars[b]).join("");

function train(pattern, normalize, merges) {
  const counts = new Map();
  for (const line of corpus) {
    for (const m of normalize(line).matchAll(forJs(pattern))) {
      const w = toByteLevel(m[0]);
      counts.set(w, (counts.get(w) || 0) + 1);
    }
  }
  const words = [...counts].map(([w, c]) => ({ symbols: [...w], count: c }));
  const vocab = new Map(byteChars.map((c, i) => [c, i]));
  const rules = [];
  for (let step = 0; step < merges; step++) {
    const pairs = new Map();
    for (const { symbols, count } of words)
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = symbols[i] + " " + symbols[i + 1];
        pairs.set(key, (pairs.get(key) || 0) + count);
      }
    let best = null, bestCount = 0;
    for (const [key, c] of pairs) if (c > bestCount || (c === bestCount && key < best)) [best, bestCount] = [key, c];
    if (best === null || bestCount < 2) break;
    const [a, b] = best.split(" ");
    rules.push([a, b]);
    if (!vocab.has(a + b)) vocab.set(a + b, vocab.size);
    for (const w of words) {
      const out = [];
      for (let i = 0; i < w.symbols.length; i++) {
        if (i + 1 < w.symbols.length && w.symbols[i] === a && w.symbols[i + 1] === b) { out.push(a + b); i++; }
        else out.push(w.symbols[i]);
      }
      w.symbols = out;
    }
  }
  return { vocab, rules };
}

function write(name, { pattern, normalizer, ignoreMerges, mergesAsArrays, specials, template, config }) {
  const normalize = normalizer ? (s) => s.normalize(normalizer.type) : (s) => s;
  const { vocab, rules } = train(pattern, normalize, 900);
  const added = [];
  for (const [content, special] of specials) {
    added.push({ id: vocab.size + added.length, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special });
  }
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false };
  const json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer,
    pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "Split", pattern: { Regex: pattern }, behavior: "Isolated", invert: false }, byteLevel] },
    post_processor: template
      ? { type: "Sequence", processors: [{ ...byteLevel, use_regex: true }, {
          type: "TemplateProcessing",
          single: [{ SpecialToken: { id: template, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
          pair: [{ SpecialToken: { id: template, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: template, type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
          special_tokens: { [template]: { id: template, ids: [added.find((a) => a.content === template).id], tokens: [template] } },
        }] }
      : { ...byteLevel, use_regex: false },
    decoder: { ...byteLevel, use_regex: true },
    model: {
      type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false,
      byte_fallback: false, ...(ignoreMerges ? { ignore_merges: true } : {}),
      vocab: Object.fromEntries(vocab),
      merges: mergesAsArrays ? rules : rules.map(([a, b]) => `${a} ${b}`),
    },
  };
  const dir = join(here, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(json, null, 1) + "\n");
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(config, null, 2) + "\n");

  const tokenizer = new PreTrainedTokenizer(json, { ...config, clean_up_tokenization_spaces: false });
  // decoded_clean: the decode with clean_up_tokenization_spaces = true, as transformers applies it when the config says so.
  const cleaning = new PreTrainedTokenizer(json, { ...config, clean_up_tokenization_spaces: true });
  const clean = (ids) => (ids.length ? cleaning.decode(ids, { skip_special_tokens: true }) : "");
  const size = vocab.size + added.length;
  const lines = [];
  // Beyond the BMP: letters, digits (counted by \p{N}{1,3}) and emoji next to contractions (a lone surrogate cannot be written: System.Text.Json refuses it).
  const spacing = ["a . b ? c ! d , e", "it ' s", "don ' t", " n't 'm 's 've 're", "x ' . y", "' ' '", " ' ' s", "a  .  b"];
  const astral = ["𐌀's", "x𐌀'S y", "𝟎𝟏𝟐𝟑𝟒𝟓𝟔", "🦘's 🦘🦘 's", "e\u0301\u0301 ﬁ"];
  const withSpecials = [...texts, ...spacing, ...astral, ...specials.map(([c]) => `before${c}after`), `${specials[0][0]} x ${specials[1][0]}`];
  for (const text of withSpecials) {
    const ids = tokenizer.encode(text);
    lines.push({ kind: "text", text, ids, decoded: ids.length ? tokenizer.decode(ids, { skip_special_tokens: true }) : "", decoded_clean: clean(ids) });
  }
  // Random ids: byte-level tokens that split UTF-8 characters, special tokens between them.
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let n = 0; n < 200; n++) {
    const ids = Array.from({ length: 1 + Math.floor(random() * 24) }, () => (random() < 0.4 ? 128 + Math.floor(random() * 128) : Math.floor(random() * size)));
    lines.push({ kind: "ids", ids, decoded: tokenizer.decode(ids, { skip_special_tokens: true }), decoded_clean: clean(ids) });
  }
  // Random ids among spaces, punctuation and contraction pieces: where the space cleanup acts, across token boundaries.
  const pieces = [...new Set([" ", "  ", ".", "?", "!", ",", "'", " '", "n", "'t", "t", "s", "'s", "m", "ve", "re", "x", " .", " ,", " n"]
    .flatMap((p) => tokenizer.encode(p, { add_special_tokens: false })))];
  for (let n = 0; n < 200; n++) {
    const ids = Array.from({ length: 1 + Math.floor(random() * 16) }, () => pieces[Math.floor(random() * pieces.length)]);
    lines.push({ kind: "ids", ids, decoded: tokenizer.decode(ids, { skip_special_tokens: true }), decoded_clean: clean(ids) });
  }
  writeFileSync(join(dir, "expected.jsonl"), lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
  console.log(`${name}: ${size} tokens, ${rules.length} merges, ${lines.length} expectations`);
}

write("bytelevel-llama3", {
  pattern: LLAMA3, normalizer: null, ignoreMerges: true, mergesAsArrays: false,
  specials: [["<|begin_of_text|>", true], ["<|end_of_text|>", true], ["<|eot_id|>", true], ["<tool>", false]],
  template: "<|begin_of_text|>",
  config: { tokenizer_class: "PreTrainedTokenizerFast", bos_token: "<|begin_of_text|>", eos_token: "<|end_of_text|>", clean_up_tokenization_spaces: false },
});
write("bytelevel-qwen2", {
  pattern: QWEN2, normalizer: { type: "NFC" }, ignoreMerges: false, mergesAsArrays: true,
  specials: [["<|endoftext|>", true], ["<|im_start|>", true], ["<|im_end|>", true]],
  template: null,
  config: { tokenizer_class: "Qwen2Tokenizer", add_bos_token: false, bos_token: null, eos_token: "<|im_end|>", clean_up_tokenization_spaces: false },
});
