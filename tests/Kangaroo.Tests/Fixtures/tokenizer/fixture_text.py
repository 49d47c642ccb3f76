"""Text for the tokenizer fixtures (run through make_fixtures.sh).

  fixture_text.py corpus          -> training text on stdout (one sentence a line, as spm_train reads it)
  fixture_text.py texts           -> the held-out test texts, one JSON string a line (for make_bytelevel.mjs)
  fixture_text.py expect MODEL    -> JSON lines on stdout:
      {"kind":"text","text":...,"ids":[...],"decoded":...}   ids of held-out test text, without BOS
      {"kind":"ids","ids":[...],"decoded":...}                decode of a random id sequence

Everything is seeded, so the output is the same on every run. The test text never appears in the corpus.
"""
import json
import random
import sys

WORDS_EN = ("the quick brown fox jumps over lazy dog model token text kangaroo engine weights layer "
            "attention matrix vector cache memory thread session stream byte piece value number string "
            "function return class public private static void while for if else break continue true false "
            "tokenizer decoder encoder inference batch sample temperature probability sentence word").split()
WORDS_FR = "déjà été naïve façon garçon où là très élève forêt hôtel cœur Noël Ça s'il vous plaît à bientôt".split()
WORDS_DE = "Größe Straße über schön Mädchen Fußball grün Bär Äpfel Übung Öl heißt".split()
WORDS_ES = "niño señor año mañana corazón canción ¿qué? ¡hola! pingüino acción".split()
WORDS_CJK = "東京 日本語 中文 漢字 学生 先生 电脑 程序 模型 今日は ありがとう こんにちは 한국어 안녕하세요 감사합니다".split()
WORDS_MISC = "Привет мир спасибо Ελληνικά καλημέρα שלום مرحبا नमस्ते ไทย".split()
EMOJI = "😀 😂 👍 🎉 🚀 ❤️ 🔥 ✨ 🐍 ☕".split()

CODE_SNIPPETS = [
    "def add(a, b):\n    return a + b\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        self.items.append(item)\n",
    "for i in range(10):\n    if i % 2 == 0:\n        print(i)\n    else:\n        continue\n",
    "public static int Sum(int[] values)\n{\n    int total = 0;\n    foreach (var v in values)\n        total += v;\n    return total;\n}\n",
    "namespace Demo;\n\npublic sealed class Point\n{\n    public double X { get; init; }\n    public double Y { get; init; }\n}\n",
    "if (x > 0)\n{\n\tConsole.WriteLine(\"positive\");\n}\nelse\n{\n\tConsole.WriteLine(\"non-positive\");\n}\n",
    "import os\nimport sys\n\n\ndef main(argv):\n    path = argv[1]\n    with open(path) as f:\n        return len(f.read())\n",
    "var list = new List<string> { \"a\", \"b\", \"c\" };\nvar joined = string.Join(\", \", list);\n",
    "while (true) {\n        count++;\n        if (count >= limit) break;\n}\n",
    "x = [i * i for i in range(100) if i % 3]\ny = {k: v for k, v in zip(a, b)}\n",
]


def corpus_lines(rng):
    words = WORDS_EN * 4 + WORDS_FR + WORDS_DE + WORDS_ES + WORDS_CJK + WORDS_MISC
    for _ in range(6000):
        n = rng.randint(3, 18)
        sentence = " ".join(rng.choice(words) for _ in range(n))
        if rng.random() < 0.3:
            sentence += " " + str(rng.randint(0, 100000))
        if rng.random() < 0.1:
            sentence += " " + rng.choice(EMOJI)
        if rng.random() < 0.1:
            sentence = "  " * rng.randint(1, 4) + sentence
        yield sentence.capitalize() + rng.choice(".!?;:")
    # Code: spm_train reads one sentence a line, so a snippet is fed line by line (newlines are never pieces).
    for _ in range(300):
        for line in rng.choice(CODE_SNIPPETS).split("\n"):
            yield line.replace("a + b", f"{rng.choice(WORDS_EN)} + {rng.randint(0, 99)}")


TEST_LINES = [
    "", " ", "  ", "   leading spaces", "trailing spaces   ", "a  b   c    d", "\t", "\ttab first", "x\ty\tz",
    "\n", "\n\n", "line one\nline two", "ends with newline\n", "\nstarts with newline", "windows\r\nline ending",
    "Hello, world!", "hello world", "HELLO WORLD", "The kangaroo jumps over the lazy weights.",
    "Numbers: 0 1 12 123 1234 3.14159 -42 1,000,000 2024-01-31 0x1F 1e-9",
    "Accents: déjà vu, naïve café, façade, Ångström, crème brûlée.",
    "Combining: e\u0301 a\u0308 n\u0303 (decomposed forms stay as they are)",
    "German: Die Straße ist größer als der Fluß.",
    "Spanish: ¿Dónde está el niño? ¡Qué año!",
    "Japanese: 今日はいい天気ですね。", "Chinese: 我们正在测试分词器。", "Korean: 토크나이저를 시험합니다.",
    "Russian: Съешь же ещё этих мягких французских булок.", "Greek: Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "Hebrew: עברית מימין לשמאל", "Arabic: العربية من اليمين", "Hindi: हिन्दी परीक्षण", "Thai: ภาษาไทย",
    "Emoji: 😀😂🎉 🚀🔥", "Rare emoji: 🦘🪐🧬🫠", "ZWJ: 👩\u200d💻 👨\u200d👩\u200d👧", "Flags: 🇫🇷🇯🇵",
    "Skin tone: 👍🏽", "Variation selector: ❤\ufe0f ☺\ufe0e",
    "Rare scripts: 𐌀𐌁𐌂 ሰላም ᚠᚢᚦ ꦗꦮ 𓀀𓁐", "Math: ∀x ∈ ℝ, ∃y: x² + y² ≤ 1 ∑ ∫ √ ∞",
    "Box drawing: ┌─┐│└┘", "Currency: € £ ¥ ₹ ₿ 100€", "Fullwidth: ＡＢＣ１２３",
    "Ligatures: ﬁ ﬂ", "Zero width: a\u200bb\u200cc\u200dd", "NBSP: a\u00a0b", "Ideographic space: a\u3000b",
    "Meta symbol itself: a\u2581b \u2581\u2581", "Replacement char: \ufffd", "BOM: \ufeffstart",
    "Control: a\u0007b\u001bc", "Private use: \ue000\U000F0000",
    "Quotes: “curly” ‘single’ «guillemets» „low“", "Dashes: – — ‐ ‒", "Ellipsis… and bullet •",
    "URL: https://example.com/path?query=1&x=y#frag", "Email: someone@example.org",
    "Path: C:\\Users\\name\\file.txt and /usr/local/bin", "JSON: {\"key\": [1, 2, {\"nested\": null}]}",
    "Markdown: # Title\n\n- item *one*\n- item **two**\n\n```\ncode\n```",
    "    four space indent", "        eight space indent", "\t\tdouble tab indent", " \t mixed \t whitespace \t ",
    "snake_case_name camelCaseName PascalCaseName SCREAMING_CASE kebab-case-name",
    "a+b=c; x*=2; y<<=3; z!==w && p||q",
    "def f(x):\n    return x * 2\n",
    "def g(items):\n    total = 0\n    for item in items:\n        if item:\n            total += item\n\n    return total\n",
    "class Node:\n\tdef __init__(self, value):\n\t\tself.value = value\n\t\tself.next = None\n",
    "async def fetch(url):\n    async with session.get(url) as r:\n        return await r.text()\n",
    "@dataclass\nclass Config:\n    name: str = \"default\"\n    size: int = 128\n    ratio: float = 0.75\n",
    "try:\n    value = int(text)\nexcept ValueError as e:\n    raise SystemExit(f\"bad: {e}\")\nfinally:\n    pass\n",
    "lambda x, y: (x ** 2 + y ** 2) ** 0.5",
    "public int Count { get; private set; }",
    "public sealed class Cache<TKey, TValue> where TKey : notnull\n{\n    private readonly Dictionary<TKey, TValue> _map = new();\n}\n",
    "static void Main(string[] args)\n{\n    Console.WriteLine($\"{args.Length} args\");\n}\n",
    "switch (kind)\n{\n    case 1:\n        return \"one\";\n    default:\n        throw new ArgumentOutOfRangeException(nameof(kind));\n}\n",
    "ReadOnlySpan<byte> span = stackalloc byte[16];\nspan[0] = 0xFF;\n",
    "for (int i = 0; i < n; i++)\n{\n\tsum += a[i] * b[i];\n}\n",
    "#include <stdio.h>\n\nint main(void) {\n  printf(\"%d\\n\", 42);\n  return 0;\n}\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!(\"{:?}\", v);\n}\n",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "<div class=\"box\">\n  <span>text</span>\n</div>",
    "    \n    \n", "\n    indented after newline", "code   \n\n\n   more", "trailing tabs\t\t\n",
    "x" * 40, "ab" * 30, "1234567890" * 5, "!!!???...,,,;;;", "(((())))[[[]]]{{{}}}", "<<<>>>", "____----====",
]


def test_texts(rng):
    yield from TEST_LINES
    # Random mixtures, drawn with a different generator than the corpus, and with rare characters mixed in.
    rare = "𐌀ሰᚠ𓀀🦘🪐ꦗ\u2581\u00a0\t\n"
    pool = WORDS_EN + WORDS_FR + WORDS_DE + WORDS_CJK + WORDS_MISC + EMOJI + list(rare) + ["  ", "   ", "\n\n"]
    for _ in range(60):
        n = rng.randint(1, 14)
        parts = [rng.choice(pool) for _ in range(n)]
        sep = rng.choice([" ", " ", "", "  ", "\t", "\n"])
        yield sep.join(parts)


def expectations(model_path, rng):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=model_path)
    for text in test_texts(rng):
        ids = sp.encode(text, out_type=int)
        yield {"kind": "text", "text": text, "ids": ids, "decoded": sp.decode(ids)}
    # Random ids stress decoding: control and unknown ids, byte pieces that do not form valid UTF-8, leading pieces.
    size = sp.get_piece_size()
    byte_ids = [i for i in range(size) if sp.is_byte(i)]
    special = [sp.bos_id(), sp.eos_id(), sp.unk_id()]
    for _ in range(200):
        n = rng.randint(1, 24)
        ids = []
        for _ in range(n):
            r = rng.random()
            ids.append(rng.choice(special) if r < 0.1 else rng.choice(byte_ids) if r < 0.45 else rng.randrange(size))
        yield {"kind": "ids", "ids": ids, "decoded": sp.decode(ids)}


def main():
    if sys.argv[1] == "corpus":
        for line in corpus_lines(random.Random(20240101)):
            print(line)
    elif sys.argv[1] == "texts":
        for text in test_texts(random.Random(7)):
            print(json.dumps(text, ensure_ascii=False))
    elif sys.argv[1] == "expect":
        for record in expectations(sys.argv[2], random.Random(7)):
            print(json.dumps(record, ensure_ascii=False))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
