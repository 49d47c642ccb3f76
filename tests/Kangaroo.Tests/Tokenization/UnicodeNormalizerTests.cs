using System.Globalization;
using System.Text;
using Kangaroo.Tokenization;
using Xunit;

namespace Kangaroo.Tests.Tokenization;

/// <summary>
/// UnicodeNormalizer against Python's unicodedata.normalize (Fixtures/unicode/normalization-tests.txt, written by
/// tools/unicode/make_normalization_data.py --tests): every code point that some form changes, and random strings of
/// marks in random orders, Hangul, accented letters, compatibility and supplementary-plane characters; all four forms.
/// </summary>
public class UnicodeNormalizerTests
{
    private static readonly (NormalizationForm Form, string Name)[] Forms =
        [(NormalizationForm.FormC, "NFC"), (NormalizationForm.FormD, "NFD"), (NormalizationForm.FormKC, "NFKC"), (NormalizationForm.FormKD, "NFKD")];

    private static readonly Lazy<Fixture> Cases = new(Fixture.Read);

    [Fact]
    public void EveryCodePointThatSomeFormChanges_NormalizesAsUnicodedata()
    {
        var cases = Cases.Value.Section("code-points");
        // Hangul syllables are most of them.
        Assert.True(cases.Count > 15_000, $"only {cases.Count} code points");
        AssertAllFormsMatch(cases);
    }

    [Fact]
    public void RandomMixedStrings_NormalizeAsUnicodedata()
    {
        var cases = Cases.Value.Section("random");
        Assert.True(cases.Count >= 3_000, $"only {cases.Count} random strings");
        AssertAllFormsMatch(cases);
    }

    [Fact]
    public void NormalizingTwice_ChangesNothingMore_OnTheRandomStrings()
    {
        var mismatches = new List<string>();
        foreach (var c in Cases.Value.Section("random"))
            foreach (var (form, name) in Forms)
            {
                string once = UnicodeNormalizer.Normalize(c.Source, form);
                string twice = UnicodeNormalizer.Normalize(once, form);
                if (twice != once) mismatches.Add($"line {c.Line}: {name}({name}({Hex(c.Source)})) is {Hex(twice)}, {name} of it {Hex(once)}");
            }
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} differ:\n{string.Join("\n", mismatches.Take(10))}");
    }

    [Fact]
    public void TheFixture_IsOfTheDatasUnicodeVersion() => Assert.Equal(Cases.Value.Version, UnicodeNormalizer.UnicodeVersion);

    [Fact]
    public void TextWithNothingToDo_ComesBackAsTheSameString()
    {
        string ascii = "Hello, world! 0123456789 \t\r\n ~{}[]<>";
        foreach (var (form, name) in Forms)
        {
            Assert.Same(ascii, UnicodeNormalizer.Normalize(ascii, form));
            Assert.Same("", UnicodeNormalizer.Normalize("", form));
            string belowBound = new([.. Enumerable.Range(0, UnicodeNormalizer.FastPathBound(form)).Select(c => (char)c)]);
            Assert.True(ReferenceEquals(belowBound, UnicodeNormalizer.Normalize(belowBound, form)), name);
        }
        string latin1 = "naïve café, Æsir Øre";   // NFC's fast path takes all of Latin-1
        Assert.Same(latin1, UnicodeNormalizer.Normalize(latin1, NormalizationForm.FormC));
    }

    [Fact]
    public void FastPathBounds_AreExact()
    {
        foreach (var (form, name) in Forms)
        {
            char bound = UnicodeNormalizer.FastPathBound(form);
            // Below the bound, no code point is changed alone, and no pair is changed by the whole algorithm: the
            // leading emoji is there to keep the fast path out.
            foreach (var c in Cases.Value.Section("code-points").Where(c => c.Source[0] < bound))
                Assert.True(c.Expected[Array.FindIndex(Forms, f => f.Form == form)] == c.Source, $"{name} changes {Hex(c.Source)}");
            var changed = new List<string>();
            var pair = new char[4];
            "\U0001F998".CopyTo(pair);
            for (int a = 0; a < bound; a++)
                for (int b = 0; b < bound; b++)
                {
                    (pair[2], pair[3]) = ((char)a, (char)b);
                    string text = new(pair);
                    if (UnicodeNormalizer.Normalize(text, form) != text) changed.Add(Hex(text));
                }
            Assert.True(changed.Count == 0, $"{name} changes {changed.Count} pairs below its bound: {string.Join(", ", changed.Take(10))}");
            // At the bound, it has something to do.
            Assert.True(UnicodeNormalizer.Normalize($"A{bound}", form) != $"A{bound}", $"{name}'s bound U+{(int)bound:X4} could be higher");
        }
    }

    [Theory]
    [InlineData("\uD800", "\uD800", "\uD800")]
    [InlineData("\uDC00", "\uDC00", "\uDC00")]
    [InlineData("a\uD800b", "a\uD800b", "a\uD800b")]
    [InlineData("e\u0301\uDBFF", "\u00E9\uDBFF", "e\u0301\uDBFF")]
    [InlineData("\u00E9\uD83D", "\u00E9\uD83D", "e\u0301\uD83D")]
    [InlineData("\uDC00\u0301", "\uDC00\u0301", "\uDC00\u0301")]
    [InlineData("\uDE00\uD83D\u00C5", "\uDE00\uD83D\u00C5", "\uDE00\uD83DA\u030A")]
    [InlineData("\uD83D\uDE00\uD83D", "\uD83D\uDE00\uD83D", "\uD83D\uDE00\uD83D")]
    // A lone surrogate is a starter: it keeps jamo apart and blocks a mark from the letter before it.
    [InlineData("\u1100\uD800\u1161", "\u1100\uD800\u1161", "\u1100\uD800\u1161")]
    [InlineData("e\uDFFF\u0301", "e\uDFFF\u0301", "e\uDFFF\u0301")]
    public void LoneSurrogates_AreKeptAsTheyAre(string text, string nfc, string nfd)
    {
        Assert.Equal(Hex(nfc), Hex(UnicodeNormalizer.Normalize(text, NormalizationForm.FormC)));
        Assert.Equal(Hex(nfd), Hex(UnicodeNormalizer.Normalize(text, NormalizationForm.FormD)));
        Assert.Equal(Hex(nfc), Hex(UnicodeNormalizer.Normalize(text, NormalizationForm.FormKC)));
        Assert.Equal(Hex(nfd), Hex(UnicodeNormalizer.Normalize(text, NormalizationForm.FormKD)));
    }

    [Fact]
    public void ALongRunOfMarks_IsOrderedByClass_KeepingTheOrderWithinAClass()
    {
        // Classes 230 (above) and 220 (below), several of each, far more than a short run.
        (char Mark, int Class)[] marks = [('\u0301', 230), ('\u0316', 220), ('\u0302', 230), ('\u0317', 220), ('\u0303', 230)];
        var rng = new Random(7);
        var run = Enumerable.Range(0, 200).Select(_ => marks[rng.Next(marks.Length)]).ToArray();
        string text = "x" + new string([.. run.Select(m => m.Mark)]);
        string expected = "x" + new string([.. run.OrderBy(m => m.Class).Select(m => m.Mark)]);   // OrderBy is stable
        Assert.Equal(Hex(expected), Hex(UnicodeNormalizer.Normalize(text, NormalizationForm.FormD)));
    }

    [Fact]
    public void AFormOtherThanTheFour_IsRefused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => UnicodeNormalizer.Normalize("\u00E9", (NormalizationForm)3));

    private static void AssertAllFormsMatch(IReadOnlyList<Case> cases)
    {
        var mismatches = new List<string>();
        int lines = 0;
        foreach (var c in cases)
        {
            bool differs = false;
            for (int f = 0; f < Forms.Length; f++)
            {
                string got = UnicodeNormalizer.Normalize(c.Source, Forms[f].Form);
                if (got == c.Expected[f]) continue;
                differs = true;
                if (mismatches.Count < 20)
                    mismatches.Add($"line {c.Line}: {Forms[f].Name}({Hex(c.Source)}): expected {Hex(c.Expected[f])}, got {Hex(got)}");
            }
            if (differs) lines++;
        }
        Assert.True(lines == 0, $"{lines} of {cases.Count} lines differ; the first:\n{string.Join("\n", mismatches)}");
    }

    /// <summary>Code points in hex, a lone surrogate as itself.</summary>
    private static string Hex(string text)
    {
        var parts = new List<string>();
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsSurrogatePair(text, i))
            {
                parts.Add(char.ConvertToUtf32(text[i], text[i + 1]).ToString("X4", CultureInfo.InvariantCulture));
                i++;
            }
            else parts.Add(((int)text[i]).ToString("X4", CultureInfo.InvariantCulture));
        }
        return "[" + string.Join(" ", parts) + "]";
    }

    private sealed record Case(int Line, string Source, string[] Expected);

    private sealed class Fixture(string version, Dictionary<string, List<Case>> sections)
    {
        public string Version { get; } = version;

        public IReadOnlyList<Case> Section(string name) => sections[name];

        public static Fixture Read()
        {
            string path = Path.Combine(AppContext.BaseDirectory, "Fixtures", "unicode", "normalization-tests.txt");
            string? version = null;
            var sections = new Dictionary<string, List<Case>>();
            List<Case>? current = null;
            int number = 0;
            foreach (string line in File.ReadLines(path))
            {
                number++;
                if (line.Length == 0 || line[0] == '#') continue;
                if (line.StartsWith("@version ", StringComparison.Ordinal)) version = line["@version ".Length..];
                else if (line[0] == '@') sections[line[1..]] = current = [];
                else
                {
                    string[] f = line.Split(';');
                    if (f.Length != 5 || current is null) throw new FormatException($"{path} line {number}: \"{line}\"");
                    // Empty NFC and NFD fields are the source, empty NFKC and NFKD fields the NFC and NFD ones.
                    string source = FromHex(f[0]);
                    string nfc = f[1].Length == 0 ? source : FromHex(f[1]), nfd = f[2].Length == 0 ? source : FromHex(f[2]);
                    string nfkc = f[3].Length == 0 ? nfc : FromHex(f[3]), nfkd = f[4].Length == 0 ? nfd : FromHex(f[4]);
                    current.Add(new Case(number, source, [nfc, nfd, nfkc, nfkd]));
                }
            }
            return new Fixture(version ?? throw new FormatException($"{path} states no @version"), sections);
        }

        private static string FromHex(string field) => string.Concat(field.Split(' ')
            .Select(h => char.ConvertFromUtf32(int.Parse(h, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture))));
    }
}
