using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Kangaroo.Tests.Fuzz;

/// <summary>Seeded choices. <see cref="Random(int)"/> with a seed is the same sequence on every .NET version and machine.</summary>
internal sealed class Gen(int seed)
{
    private readonly Random _random = new(seed);

    public int Int(int maxExclusive) => _random.Next(maxExclusive);
    public int Int(int min, int maxExclusive) => _random.Next(min, maxExclusive);
    public long Long(long min, long maxExclusive) => _random.NextInt64(min, maxExclusive);
    public bool Chance(double p) => _random.NextDouble() < p;
    public double Double() => _random.NextDouble();
    public byte Byte() => (byte)_random.Next(256);
    public T Pick<T>(IReadOnlyList<T> items) => items[_random.Next(items.Count)];

    public byte[] Bytes(int count)
    {
        var b = new byte[count];
        _random.NextBytes(b);
        return b;
    }

    /// <summary>Stable 64-bit FNV-1a (string.GetHashCode is randomized per process).</summary>
    public static ulong Hash(string s)
    {
        ulong h = 14695981039346656037;
        foreach (char c in s)
        {
            h ^= c;
            h *= 1099511628211;
        }
        return h;
    }

    public static ulong Mix(ulong x)
    {
        x += 0x9E3779B97F4A7C15;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB;
        return x ^ (x >> 31);
    }
}

/// <summary>Builds one <see cref="FuzzCase"/>: the base, the file changes, a description of each step and the expectation.</summary>
internal sealed class CaseBuilder(string family, long seed, FuzzBases bases, Gen gen)
{
    private readonly List<FileOp> _ops = [];
    private readonly List<string> _steps = [];
    private readonly List<string> _fields = [];
    private readonly List<string> _refuseReasons = [];
    private int _benignSteps;
    private string? _target;

    public FuzzBases Bases { get; } = bases;
    public Gen G { get; } = gen;
    public FuzzBase Base { get; private set; } = bases.Single;
    public string? Marker { get; set; }

    public CaseBuilder On(FuzzBase b)
    {
        Base = b;
        return this;
    }

    /// <summary>The (last) content a step gave to a file, or the base's bytes.</summary>
    public byte[] Current(string relative)
    {
        for (int i = _ops.Count - 1; i >= 0; i--)
            if (_ops[i].Path == relative)
                return _ops[i] is FileOp.Write w ? w.Bytes : [];
        return Base.Read(relative);
    }

    public string CurrentText(string relative) => Encoding.UTF8.GetString(Current(relative));

    public void Op(FileOp op)
    {
        _ops.Add(op);
        _target ??= op.Path;
    }

    public void Write(string relative, byte[] bytes) => Op(new FileOp.Write(relative, bytes));
    public void WriteText(string relative, string text) => Write(relative, Encoding.UTF8.GetBytes(text));

    public void Target(string relative) => _target = relative;

    /// <summary>A step whose outcome may be either (loads, or a documented refusal).</summary>
    public void Step(string description) => _steps.Add(description);

    /// <summary>A step that on its own must load (a harmless change).</summary>
    public void Benign(string description)
    {
        _steps.Add(description);
        _benignSteps++;
    }

    /// <summary>A step that must be refused: it breaks the model or changes what it means.</summary>
    public void Refuse(string description, string reason)
    {
        _steps.Add(description);
        _refuseReasons.Add(reason);
    }

    /// <summary>Adds a reason to refuse found by looking at the result (e.g. the config's semantics).</summary>
    public void AlsoRefuse(string reason)
    {
        if (!_refuseReasons.Contains(reason)) _refuseReasons.Add(reason);
    }

    public void Field(string name)
    {
        if (!_fields.Contains(name)) _fields.Add(name);
    }

    public FuzzCase Build()
    {
        if (_steps.Count == 0) throw new InvalidOperationException($"{family}/{seed}: a case needs at least one step");
        var expect = _refuseReasons.Count > 0 ? Expectation.MustRefuse
            : _benignSteps == _steps.Count ? Expectation.MustLoad
            : Expectation.Either;
        return new FuzzCase
        {
            Family = family, Seed = seed, Base = Base, Description = string.Join("; ", _steps), Expect = expect,
            ExpectReason = _refuseReasons.Count > 0 ? string.Join("; ", _refuseReasons) : null,
            Target = _target ?? "", Ops = [.. _ops], Fields = [.. _fields], Marker = Marker,
        };
    }
}

/// <summary>
/// JSON text being edited: a <see cref="JsonObject"/> tree where values can also be raw JSON text (numbers JsonNode
/// cannot hold, like 1e400 or 2^64, and invalid tokens like NaN), spliced in on <see cref="Serialize"/>.
/// </summary>
internal sealed class JsonText
{
    private readonly Dictionary<string, string> _raw = new(StringComparer.Ordinal);

    private JsonText(JsonNode root) => Root = root;

    public JsonNode Root { get; private set; }
    public JsonObject? Object => Root as JsonObject;

    public static JsonText? TryParse(string text)
    {
        try
        {
            var node = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            return node is null ? null : new JsonText(node);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public static JsonText Parse(string text) => TryParse(text) ?? throw new InvalidOperationException("base JSON does not parse");

    /// <summary>A node standing for raw JSON text.</summary>
    public JsonNode RawNode(string rawJson)
    {
        string token = $"@@RAW{_raw.Count}@@";
        _raw[token] = rawJson;
        return JsonValue.Create(token);
    }

    public void SetRaw(JsonObject obj, string key, string rawJson) => obj[key] = RawNode(rawJson);

    public void ReplaceRoot(string rawJson) => Root = RawNode(rawJson);

    public string Serialize(bool indented = true)
    {
        string text = Root.ToJsonString(new JsonSerializerOptions { WriteIndented = indented });
        foreach (var (token, raw) in _raw) text = text.Replace($"\"{token}\"", raw, StringComparison.Ordinal);
        return text + (indented ? "\n" : "");
    }

    /// <summary>Raw JSON for a .NET value (invariant culture, "R" doubles).</summary>
    public static string Literal(object? value) => value switch
    {
        null => "null",
        bool b => b ? "true" : "false",
        string s => JsonSerializer.Serialize(s),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => throw new ArgumentException($"no literal for {value.GetType()}"),
    };
}

/// <summary>Values for JSON fields: plausible, absurd, wrong-typed and invalid.</summary>
internal static class JsonPools
{
    public static readonly string[] Ints =
    [
        "0", "-1", "1", "2", "3", "4", "5", "7", "8", "11", "12", "16", "31", "33", "64", "100", "511", "512", "513", "1000", "1499",
        "1500", "1501", "2048", "4096", "7999", "8000", "8001", "65536", "100000000", "2147483647", "2147483648", "4294967296",
        "-2147483648", "-2147483649", "9007199254740993", "18446744073709551616", "1e30", "100000000000000000000",
    ];

    public static readonly string[] Floats =
    [
        "0.5", "1.0", "4.0", "-0.0", "-0", "1e-300", "1e-45", "1.4e-45", "1e-5", "1e-06", "1e300", "1.7976931348623157e308", "1e400", "-1e400",
        "3.14", "1E5", "2.5", "5e-324", "0.0", "1e+2",
    ];

    public static readonly string[] Strings =
    [
        "\"\"", "\"32\"", "\"silu\"", "\"gelu\"", "\"llama3\"", "\"default\"", "\"true\"", "\"null\"", "\"\\u0000\"", "\"\\ud800\"",
        "\"" + new string('x', 5000) + "\"", "\"1e-5\"", "\"float16\"", "\"llama\"",
    ];

    public static readonly string[] Others =
    [
        "true", "false", "null", "[]", "[1, 2]", "[\"a\"]", "{}", "{\"a\": 1}", "[[[[]]]]", "[null]", "{\"rope_type\": \"llama3\"}",
    ];

    /// <summary>Tokens that are not JSON (the file must then be refused as invalid JSON).</summary>
    public static readonly string[] Invalid = ["NaN", "Infinity", "-Infinity", "0x10", "01", "+1", ".5", "1.", "'x'", "undefined", "1_000", "\"unterminated"];

    public static string Any(Gen g) => g.Int(10) switch
    {
        < 4 => g.Pick(Ints),
        < 6 => g.Pick(Floats),
        < 7 => g.Pick(Strings),
        < 9 => g.Pick(Others),
        _ => g.Pick(Invalid),
    };

    /// <summary>The raw JSON value with its type changed (a number quoted, wrapped in a list, an object...).</summary>
    public static string TypeSwap(Gen g, JsonNode? value)
    {
        string raw = value?.ToJsonString() ?? "null";
        return g.Int(6) switch
        {
            0 => JsonSerializer.Serialize(raw),
            1 => $"[{raw}]",
            2 => $"{{\"value\": {raw}}}",
            3 => value is JsonValue v && v.TryGetValue(out bool b) ? (b ? "1" : "0") : "true",
            4 => "null",
            _ => value is JsonValue n && n.TryGetValue(out double d) ? JsonTextLiteralFloat(d) : "\"\"",
        };
    }

    private static string JsonTextLiteralFloat(double d) => (d + 0.5).ToString("R", CultureInfo.InvariantCulture);
}

/// <summary>Syntax-level changes to JSON text: comments, truncation, stray characters, BOM, duplicate keys...</summary>
internal static class JsonSyntax
{
    public static readonly string[] Kinds =
        ["line-comment", "block-comment", "trailing-comma", "truncate", "delete-char", "insert-char", "bom", "duplicate-key", "nul", "invalid-utf8", "crlf", "deep-nesting", "root-array", "empty", "whitespace-only", "two-documents", "single-quotes"];

    /// <summary>Applies a syntax change; returns the bytes and a description.</summary>
    public static (byte[] Bytes, string Description, bool StrictJsonStillValid) Apply(Gen g, string text, string? kind = null)
    {
        kind ??= g.Pick(Kinds);
        switch (kind)
        {
            case "line-comment":
            {
                int at = AfterToken(g, text);
                return (Utf8(text.Insert(at, " // a comment\n")), $"line comment inserted at char {at}", false);
            }
            case "block-comment":
            {
                int at = AfterToken(g, text);
                return (Utf8(text.Insert(at, "/* a /* comment */")), $"block comment inserted at char {at}", false);
            }
            case "trailing-comma":
            {
                int close = text.LastIndexOf('}');
                int lastValue = close - 1;
                while (lastValue > 0 && char.IsWhiteSpace(text[lastValue])) lastValue--;
                return (Utf8(text.Insert(lastValue + 1, ",")), "trailing comma before the closing brace", false);
            }
            case "truncate":
            {
                int at = g.Int(Math.Max(1, text.Length - 1));
                return (Utf8(text[..at]), $"truncated to {at} of {text.Length} chars", false);
            }
            case "delete-char":
            {
                int at = g.Int(text.Length);
                return (Utf8(text.Remove(at, 1)), $"char {at} ('{Escape(text[at])}') deleted", false);
            }
            case "insert-char":
            {
                int at = g.Int(text.Length);
                char c = g.Pick("{}[]:,\"\\x0-e.".ToCharArray());
                return (Utf8(text.Insert(at, c.ToString())), $"'{Escape(c)}' inserted at char {at}", false);
            }
            case "bom":
                return ([0xEF, 0xBB, 0xBF, .. Utf8(text)], "UTF-8 byte order mark prepended", false);
            case "duplicate-key":
            {
                int open = text.IndexOf('{');
                string dup = "\n  \"num_hidden_layers\": 1,";
                return (Utf8(text.Insert(open + 1, dup)), "\"num_hidden_layers\": 1 written twice (first occurrence added)", true);
            }
            case "nul":
            {
                int at = AfterToken(g, text);
                return (Utf8(text.Insert(at, "\0")), $"NUL byte inserted at char {at}", false);
            }
            case "invalid-utf8":
            {
                byte[] bytes = Utf8(text);
                int at = g.Int(bytes.Length);
                byte[] bad = [0xC3, 0x28];
                return ([.. bytes[..at], .. bad, .. bytes[at..]], $"invalid UTF-8 (C3 28) inserted at byte {at}", false);
            }
            case "crlf":
                return (Utf8(text.Replace("\n", "\r\n")), "CRLF line ends", true);
            case "deep-nesting":
            {
                int depth = g.Pick(new[] { 65, 200, 100_000 });
                int open = text.IndexOf('{');
                string nested = "\n  \"nested\": " + new string('[', depth) + new string(']', depth) + ",";
                return (Utf8(text.Insert(open + 1, nested)), $"a field nested {depth} arrays deep added", depth <= 64);
            }
            case "root-array":
                return (Utf8("[" + text + "]"), "the object wrapped in an array", true);
            case "empty":
                return ([], "emptied (0 bytes)", false);
            case "whitespace-only":
                return (Utf8(" \n\t \n"), "only whitespace", false);
            case "two-documents":
                return (Utf8(text + "\n" + text), "the object written twice in a row", false);
            case "single-quotes":
                return (Utf8(text.Replace('"', '\'')), "single quotes instead of double quotes", false);
            default:
                throw new ArgumentException(kind);
        }
    }

    private static string Escape(char c) => c < ' ' ? $"\\x{(int)c:x2}" : c.ToString();

    /// <summary>A position right after a structural character (where a comment or byte is syntactically interesting).</summary>
    private static int AfterToken(Gen g, string text)
    {
        var positions = new List<int>();
        for (int i = 0; i < text.Length; i++)
            if (text[i] is '{' or ',' or ':' or '[')
                positions.Add(i + 1);
        return positions.Count == 0 ? 0 : g.Pick(positions);
    }

    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);
}
