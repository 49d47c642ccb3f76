using System.Buffers;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Kangaroo.Tokenization;

/// <summary>
/// Unicode normalization (UAX #15: NFC, NFD, NFKC, NFKD) over data of our own, UnicodeNormalization.data, which
/// tools/unicode/make_normalization_data.py writes from Python's unicodedata. The engine runs with .NET's
/// InvariantGlobalization, where <see cref="string.Normalize(NormalizationForm)"/> leaves non-ASCII text unchanged, so
/// tokenizer.json normalizers could not be served through it. Lone surrogates are kept as they are and act as starters.
/// Thread-safe; the data is read once, on the first text that needs it.
/// </summary>
internal static class UnicodeNormalizer
{
    // Text wholly below a form's bound is already in that form, so it is returned without reading any data:
    // NFC composes nothing before the first combining mark, NFD decomposes nothing before À, and the compatibility
    // forms start at NO-BREAK SPACE. make_normalization_data.py checks these against its data.
    private const char BoundC = '\u0300', BoundD = '\u00C0', BoundK = '\u00A0';

    private static readonly Lazy<Tables> Data = new(Tables.Load);

    /// <summary>The Unicode version of the data (its first record), for messages and tests.</summary>
    public static string UnicodeVersion => Data.Value.Version;

    public static string Normalize(string text, NormalizationForm form)
    {
        ArgumentNullException.ThrowIfNull(text);
        (FormIndex index, char bound) = form switch
        {
            NormalizationForm.FormC => (FormIndex.C, BoundC),
            NormalizationForm.FormD => (FormIndex.D, BoundD),
            NormalizationForm.FormKC => (FormIndex.KC, BoundK),
            NormalizationForm.FormKD => (FormIndex.KD, BoundK),
            _ => throw new ArgumentOutOfRangeException(nameof(form), form, "expected FormC, FormD, FormKC or FormKD"),
        };
        int first = text.AsSpan().IndexOfAnyInRange(bound, '\uFFFF');
        return first < 0 ? text : Data.Value.Normalize(text, first, index);
    }

    /// <summary>The lowest character that <paramref name="form"/>'s fast path does not let through.</summary>
    internal static char FastPathBound(NormalizationForm form) => form switch
    {
        NormalizationForm.FormC => BoundC,
        NormalizationForm.FormD => BoundD,
        _ => BoundK,
    };

    private enum FormIndex { C, D, KC, KD }

    private sealed class Tables
    {
        private const string ResourceName = "Kangaroo.Tokenization.UnicodeNormalization.data";
        private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
        private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;
        // Past this many marks in a row, canonical ordering sorts rather than inserts: a run that long only comes from
        // text made to be slow.
        private const int InsertionSortLimit = 32;

        // Entry 0 is every code point the data does not name: a starter that decomposes to itself and composes with
        // nothing before it. Entry 1 is every Hangul syllable, whose decomposition is arithmetic.
        private const int HangulEntry = 1;

        private readonly ushort[] _blockOf;      // code point >> 8 → block
        private readonly ushort[] _entryOf;      // block << 8 | code point & 0xFF → entry
        private readonly Entry[] _entries;
        private readonly int[] _expansions;      // full decompositions, each entry's canonical and compatibility slices
        // Primary composites by their second code point: each entry's slice of firsts, ascending, and what each makes.
        private readonly int[] _compositeFirsts, _composites;

        public string Version { get; }

        private Tables(string version, ushort[] blockOf, ushort[] entryOf, Entry[] entries, int[] expansions, int[] compositeFirsts, int[] composites)
        {
            Version = version;
            _blockOf = blockOf;
            _entryOf = entryOf;
            _entries = entries;
            _expansions = expansions;
            _compositeFirsts = compositeFirsts;
            _composites = composites;
        }

        private struct Entry
        {
            public byte Ccc;
            // Boundary: normalization of the text before this code point does not depend on it or on what follows,
            // so a segment starts here. Inert: alone between two boundaries, the form leaves it as it is.
            public byte Boundary, Inert;          // one bit per FormIndex
            public int CanonicalStart, CanonicalLength, CompatibilityStart, CompatibilityLength;   // length 0: itself
            public int CompositeStart, CompositeLength;
        }

        public static Tables Load()
        {
            using Stream stream = typeof(UnicodeNormalizer).Assembly.GetManifestResourceStream(ResourceName)
                ?? throw new InvalidOperationException($"Kangaroo.Core lacks its embedded resource {ResourceName}");
            using var reader = new StreamReader(stream, Encoding.ASCII);
            var ccc = new Dictionary<int, byte>();
            var canonical = new Dictionary<int, int[]>();
            var compatibility = new Dictionary<int, int[]>();
            var composites = new List<(int First, int Second, int Composite)>();
            string? version = null;
            int lineNumber = 0;
            for (string? line = reader.ReadLine(); line is not null; line = reader.ReadLine())
            {
                lineNumber++;
                if (line.Length == 0 || line[0] == '#') continue;
                string[] f = line.Split(' ');
                try
                {
                    switch (f[0])
                    {
                        case "version":
                            version = f[1];
                            break;
                        case "c":
                            (int first, int last) = Range(f[1]);
                            byte value = byte.Parse(f[2], CultureInfo.InvariantCulture);
                            for (int cp = first; cp <= last; cp++) ccc[cp] = value;
                            break;
                        case "p" or "d" or "k":
                            var target = f[0] == "k" ? compatibility : canonical;
                            (int from, int to) = Range(f[1]);
                            if (to > from)
                            {
                                int mapped = Hex(f[2]);
                                for (int cp = from; cp <= to; cp++) target[cp] = [mapped + (cp - from)];
                                break;
                            }
                            var mapping = new int[f.Length - 2];
                            for (int m = 0; m < mapping.Length; m++) mapping[m] = Hex(f[m + 2]);
                            if (mapping.Length == 0 || f[0] == "p" && mapping.Length != 2) throw new FormatException("wrong number of code points");
                            target[from] = mapping;
                            if (f[0] == "p") composites.Add((mapping[0], mapping[1], from));
                            break;
                        default:
                            throw new FormatException($"unknown record \"{f[0]}\"");
                    }
                }
                catch (Exception e) when (e is FormatException or IndexOutOfRangeException or OverflowException)
                {
                    throw new InvalidOperationException($"{ResourceName} line {lineNumber} (\"{line}\") is malformed: {e.Message}", e);
                }
            }
            if (version is null) throw new InvalidOperationException($"{ResourceName} states no version");
            return Build(version, ccc, canonical, compatibility, composites);
        }

        private static int Hex(string s) => int.Parse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);

        private static (int First, int Last) Range(string s)
        {
            int dots = s.IndexOf("..", StringComparison.Ordinal);
            return dots < 0 ? (Hex(s), Hex(s)) : (Hex(s[..dots]), Hex(s[(dots + 2)..]));
        }

        private static Tables Build(string version, Dictionary<int, byte> ccc, Dictionary<int, int[]> canonical,
            Dictionary<int, int[]> compatibility, List<(int First, int Second, int Composite)> composites)
        {
            var seconds = new HashSet<int>(composites.Select(c => c.Second));
            for (int v = VBase; v < VBase + VCount; v++) seconds.Add(v);
            for (int t = TBase + 1; t < TBase + TCount; t++) seconds.Add(t);

            // Full decompositions: the one-level mappings applied until nothing decomposes further.
            void AppendFull(int cp, bool compat, List<int> into)
            {
                if ((uint)(cp - SBase) < SCount)
                {
                    into.AddRange(HangulJamo(cp));
                    return;
                }
                int[]? mapping = canonical.GetValueOrDefault(cp) ?? (compat ? compatibility.GetValueOrDefault(cp) : null);
                if (mapping is null) into.Add(cp);
                else foreach (int m in mapping) AppendFull(m, compat, into);
            }

            int[] named = [.. ccc.Keys.Concat(canonical.Keys).Concat(compatibility.Keys).Concat(seconds).Distinct().Order()];
            var entries = new List<Entry>(named.Length + 2);
            const byte allForms = 0b1111;
            entries.Add(new Entry { Boundary = allForms, Inert = allForms });
            // A syllable starts with an L jamo, which follows nothing; it composes back from its jamo under NFC and NFKC.
            entries.Add(new Entry { Boundary = allForms, Inert = (1 << (int)FormIndex.C) | (1 << (int)FormIndex.KC) });
            var entryOfCodePoint = new ushort[0x110000];
            for (int s = SBase; s < SBase + SCount; s++) entryOfCodePoint[s] = HangulEntry;
            var expansions = new List<int>();
            composites.Sort((a, b) => a.Second != b.Second ? a.Second.CompareTo(b.Second) : a.First.CompareTo(b.First));
            int nextComposite = 0;
            foreach (int cp in named)
            {
                var e = new Entry { Ccc = ccc.GetValueOrDefault(cp) };
                (e.CanonicalStart, e.CanonicalLength) = Slice(cp, compat: false);
                (e.CompatibilityStart, e.CompatibilityLength) = Slice(cp, compat: true);
                while (nextComposite < composites.Count && composites[nextComposite].Second < cp) nextComposite++;
                e.CompositeStart = nextComposite;
                while (nextComposite < composites.Count && composites[nextComposite].Second == cp) nextComposite++;
                e.CompositeLength = nextComposite - e.CompositeStart;
                if (entries.Count > ushort.MaxValue) throw new InvalidOperationException($"{ResourceName} names too many code points");
                entryOfCodePoint[cp] = (ushort)entries.Count;
                entries.Add(e);
            }

            (int Start, int Length) Slice(int cp, bool compat)
            {
                int start = expansions.Count;
                AppendFull(cp, compat, expansions);
                if (expansions.Count - start > 1 || expansions[start] != cp) return (start, expansions.Count - start);
                expansions.RemoveAt(start);
                return (0, 0);
            }

            (ushort[] blockOf, ushort[] entryOf) = Stage(entryOfCodePoint);
            Entry[] table = [.. entries];
            var tables = new Tables(version, blockOf, entryOf, table, [.. expansions],
                [.. composites.Select(c => c.First)], [.. composites.Select(c => c.Composite)]);
            // Flags need the tables: whether a code point starts a segment depends on its decomposition's first code
            // point, and whether it is inert on what the whole algorithm makes of it alone.
            foreach (int cp in named)
            {
                ref Entry e = ref table[entryOfCodePoint[cp]];
                for (var form = FormIndex.C; form <= FormIndex.KD; form++)
                {
                    bool compat = form is FormIndex.KC or FormIndex.KD, compose = form is FormIndex.C or FormIndex.KC;
                    (int start, int length) = compat ? (e.CompatibilityStart, e.CompatibilityLength) : (e.CanonicalStart, e.CanonicalLength);
                    int lead = length == 0 ? cp : tables._expansions[start];
                    bool boundary = e.Ccc == 0 && tables.Ccc(lead) == 0 && !(compose && seconds.Contains(lead));
                    if (boundary) e.Boundary |= (byte)(1 << (int)form);
                    if (boundary && tables.NormalizeAlone(cp, form) == cp) e.Inert |= (byte)(1 << (int)form);
                }
            }
            return tables;
        }

        private static int[] HangulJamo(int syllable)
        {
            int s = syllable - SBase;
            return s % TCount == 0 ? [LBase + s / NCount, VBase + s % NCount / TCount]
                : [LBase + s / NCount, VBase + s % NCount / TCount, TBase + s % TCount];
        }

        // Two stages: a block per 256 code points, blocks with equal contents shared (most of the code space is one
        // empty block).
        private static (ushort[] BlockOf, ushort[] EntryOf) Stage(ushort[] entryOfCodePoint)
        {
            var blockOf = new ushort[0x110000 >> 8];
            var blocks = new List<ushort>(new ushort[256]);
            var distinct = new Dictionary<string, ushort>(StringComparer.Ordinal);
            for (int b = 0; b < blockOf.Length; b++)
            {
                ReadOnlySpan<ushort> block = entryOfCodePoint.AsSpan(b << 8, 256);
                if (!block.ContainsAnyExcept((ushort)0)) continue;   // block 0
                string key = new(MemoryMarshal.Cast<ushort, char>(block));
                if (!distinct.TryGetValue(key, out ushort id))
                {
                    id = checked((ushort)(blocks.Count >> 8));
                    blocks.AddRange(block);
                    distinct[key] = id;
                }
                blockOf[b] = id;
            }
            return (blockOf, [.. blocks]);
        }

        private int EntryIndex(int cp) => _entryOf[(_blockOf[cp >> 8] << 8) | (cp & 0xFF)];

        private byte Ccc(int cp) => _entries[EntryIndex(cp)].Ccc;

        // What the form makes of one code point on its own, or -1 when that is not the code point itself.
        private int NormalizeAlone(int cp, FormIndex form)
        {
            var buffer = new Buffer();
            try
            {
                Decompose(cp, form, ref buffer);
                Reorder(buffer.Items, buffer.Count);
                int count = form is FormIndex.C or FormIndex.KC ? Compose(buffer.Items, buffer.Count) : buffer.Count;
                return count == 1 ? buffer.Items[0] : -1;
            }
            finally
            {
                buffer.Dispose();
            }
        }

        public string Normalize(string text, int first, FormIndex form)
        {
            byte bit = (byte)(1 << (int)form);
            // Back up to the segment's start: a starter before the first interesting character may compose with it.
            // Everything before first is below the fast path's bound, so one char is one code point there.
            int start = first;
            if (first > 0 && (_entries[EntryIndex(Read(text, first).CodePoint)].Boundary & bit) == 0)
                do start--; while (start > 0 && (_entries[EntryIndex(text[start])].Boundary & bit) == 0);

            var output = new StringBuilder(text.Length + 16);
            output.Append(text, 0, start);
            var buffer = new Buffer();
            try
            {
                int copyFrom = start;   // text from here to i comes out as it is
                int i = start;
                (int cp, int length) = Read(text, i);
                int entry = EntryIndex(cp);
                while (i < text.Length)
                {
                    int end = i + length, nextCp = 0, nextLength = 0, nextEntry = 0;
                    while (end < text.Length)
                    {
                        (nextCp, nextLength) = Read(text, end);
                        nextEntry = EntryIndex(nextCp);
                        if ((_entries[nextEntry].Boundary & bit) != 0) break;
                        end += nextLength;
                    }
                    if (end != i + length || (_entries[entry].Inert & bit) == 0)
                    {
                        output.Append(text, copyFrom, i - copyFrom);
                        buffer.Count = 0;
                        for (int j = i; j < end;)
                        {
                            (int c, int l) = Read(text, j);
                            Decompose(c, form, ref buffer);
                            j += l;
                        }
                        Reorder(buffer.Items, buffer.Count);
                        int count = form is FormIndex.C or FormIndex.KC ? Compose(buffer.Items, buffer.Count) : buffer.Count;
                        for (int j = 0; j < count; j++) Append(output, buffer.Items[j]);
                        copyFrom = end;
                    }
                    (i, cp, length, entry) = (end, nextCp, nextLength, nextEntry);
                }
                output.Append(text, copyFrom, text.Length - copyFrom);
            }
            finally
            {
                buffer.Dispose();
            }
            return output.ToString();
        }

        // A lone surrogate reads as itself: a code point the data does not name, so it passes through unchanged.
        private static (int CodePoint, int Length) Read(string text, int i) =>
            char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])
                ? (char.ConvertToUtf32(text[i], text[i + 1]), 2)
                : (text[i], 1);

        private static void Append(StringBuilder output, int cp)
        {
            if (cp < 0x10000)
            {
                output.Append((char)cp);
                return;
            }
            cp -= 0x10000;
            output.Append((char)(0xD800 + (cp >> 10))).Append((char)(0xDC00 + (cp & 0x3FF)));
        }

        private void Decompose(int cp, FormIndex form, ref Buffer buffer)
        {
            int index = EntryIndex(cp);
            if (index == HangulEntry)
            {
                int s = cp - SBase;
                buffer.Add(LBase + s / NCount);
                buffer.Add(VBase + s % NCount / TCount);
                if (s % TCount != 0) buffer.Add(TBase + s % TCount);
                return;
            }
            ref Entry e = ref _entries[index];
            (int start, int length) = form is FormIndex.KC or FormIndex.KD
                ? (e.CompatibilityStart, e.CompatibilityLength)
                : (e.CanonicalStart, e.CanonicalLength);
            if (length == 0) buffer.Add(cp);
            else buffer.AddRange(_expansions.AsSpan(start, length));
        }

        // Canonical ordering: each run of non-starters sorted by combining class, stably.
        private void Reorder(int[] items, int count)
        {
            for (int i = 0; i < count;)
            {
                if (Ccc(items[i]) == 0)
                {
                    i++;
                    continue;
                }
                int start = i;
                while (i < count && Ccc(items[i]) != 0) i++;
                if (i - start > 1) SortRun(items, start, i);
            }
        }

        private void SortRun(int[] items, int start, int end)
        {
            if (end - start <= InsertionSortLimit)
            {
                for (int i = start + 1; i < end; i++)
                {
                    int item = items[i];
                    byte cls = Ccc(item);
                    int j = i - 1;
                    for (; j >= start && Ccc(items[j]) > cls; j--) items[j + 1] = items[j];
                    items[j + 1] = item;
                }
                return;
            }
            // The position in the key keeps equal classes in their order.
            var keys = new long[end - start];
            for (int i = start; i < end; i++) keys[i - start] = ((long)Ccc(items[i]) << 32) | (uint)i;
            Array.Sort(keys);
            int[] sorted = [.. keys.Select(k => items[(int)k])];
            sorted.CopyTo(items, start);
        }

        // Canonical composition in place (UAX #15's reference algorithm): each character joins the last starter when a
        // primary composite exists and nothing between blocks it; returns the new count.
        private int Compose(int[] items, int count)
        {
            if (count < 2) return count;
            int starterAt = 0, starter = items[0];
            // A leading non-starter has no starter to join; 256 blocks everything after it until a starter comes.
            int lastClass = Ccc(starter) == 0 ? 0 : 256;
            int kept = 1;
            for (int i = 1; i < count; i++)
            {
                int cp = items[i];
                int cls = Ccc(cp);
                int composite = ComposePair(starter, cp);
                if (composite >= 0 && (lastClass < cls || lastClass == 0))
                {
                    items[starterAt] = composite;
                    starter = composite;
                    continue;
                }
                if (cls == 0)
                {
                    starterAt = kept;
                    starter = cp;
                }
                lastClass = cls;
                items[kept++] = cp;
            }
            return kept;
        }

        private int ComposePair(int first, int second)
        {
            if ((uint)(first - LBase) < LCount && (uint)(second - VBase) < VCount)
                return SBase + ((first - LBase) * VCount + (second - VBase)) * TCount;
            if ((uint)(first - SBase) < SCount && (first - SBase) % TCount == 0 && (uint)(second - TBase - 1) < TCount - 1)
                return first + (second - TBase);
            ref Entry e = ref _entries[EntryIndex(second)];
            if (e.CompositeLength == 0) return -1;
            int at = Array.BinarySearch(_compositeFirsts, e.CompositeStart, e.CompositeLength, first);
            return at >= 0 ? _composites[at] : -1;
        }

        /// <summary>A growable array of code points from the shared pool.</summary>
        private struct Buffer : IDisposable
        {
            public int[] Items = ArrayPool<int>.Shared.Rent(64);
            public int Count;

            public Buffer() { }

            public void Add(int cp)
            {
                if (Count == Items.Length) Grow(1);
                Items[Count++] = cp;
            }

            public void AddRange(ReadOnlySpan<int> cps)
            {
                if (Count + cps.Length > Items.Length) Grow(cps.Length);
                cps.CopyTo(Items.AsSpan(Count));
                Count += cps.Length;
            }

            private void Grow(int more)
            {
                int[] larger = ArrayPool<int>.Shared.Rent(Math.Max(Items.Length * 2, Count + more));
                Items.AsSpan(0, Count).CopyTo(larger);
                ArrayPool<int>.Shared.Return(Items);
                Items = larger;
            }

            public void Dispose() => ArrayPool<int>.Shared.Return(Items);
        }
    }
}
