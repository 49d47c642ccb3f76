using System.Globalization;
using System.Text;

namespace Kangaroo.Chat;

/// <summary>
/// The filters, tests, string and dict methods and global functions that Hugging Face chat templates use, with
/// the behaviour of jinja2 3.1 and of the extras transformers installs (<c>raise_exception</c>, <c>tojson</c> as
/// <c>json.dumps(ensure_ascii=False)</c>). Anything else is reported by name instead of rendering something wrong.
/// </summary>
internal static class TemplateBuiltins
{
    private static readonly char[] PythonWhitespace = [' ', '\t', '\n', '\r', '\f', '\v', '\x1c', '\x1d', '\x1e', '\x1f', '\x85', '\u00a0', '\u2028', '\u2029', '\u3000'];

    public static IReadOnlyDictionary<string, object?> Globals { get; } = new Dictionary<string, object?>(StringComparer.Ordinal)
    {
        ["raise_exception"] = new TemplateCallable("raise_exception", (args, _) =>
            throw new ChatTemplateException(args.Count > 0 ? TemplateValues.ToStr(args[0]) : "raise_exception() was called") { RaisedByTemplate = true }),
        ["namespace"] = new TemplateCallable("namespace", (args, kwargs) =>
        {
            var ns = new TemplateNamespace();
            foreach (object? arg in args)
            {
                if (arg is not Dictionary<string, object?> initial) throw new TemplateArgumentException("positional arguments must be dicts");
                foreach (var kv in initial) ns.Attributes[kv.Key] = kv.Value;
            }
            foreach (var kv in kwargs) ns.Attributes[kv.Key] = kv.Value;
            return ns;
        }),
        ["range"] = new TemplateCallable("range", (args, _) =>
        {
            if (args.Count is < 1 or > 3 || args.Any(a => a is not (long or bool))) throw new TemplateArgumentException("expects 1 to 3 integers");
            long start = args.Count > 1 ? TemplateValues.ToLong(args[0]) : 0;
            long stop = TemplateValues.ToLong(args.Count > 1 ? args[1] : args[0]);
            long step = args.Count > 2 ? TemplateValues.ToLong(args[2]) : 1;
            if (step == 0) throw new TemplateArgumentException("step must not be zero");
            var result = new List<object?>();
            for (long i = start; step > 0 ? i < stop : i > stop; i += step)
            {
                if (result.Count >= 1_000_000) throw new TemplateArgumentException("the range is longer than 1000000 items");
                result.Add(i);
            }
            return result;
        }),
        ["strftime_now"] = new TemplateCallable("strftime_now", (args, _) =>
            Strftime(DateTime.Now, args.Count == 1 && args[0] is string f ? f : throw new TemplateArgumentException("expects one format string"))),
    };

    /// <summary>The subset of C strftime that templates use for today's date ("%d %b %Y" in Llama 3.1/3.2).</summary>
    private static string Strftime(DateTime now, string format)
    {
        var b = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 == format.Length) { b.Append(format[i]); continue; }
            char c = format[++i];
            b.Append(c switch
            {
                'd' => now.ToString("dd", CultureInfo.InvariantCulture),
                'm' => now.ToString("MM", CultureInfo.InvariantCulture),
                'Y' => now.ToString("yyyy", CultureInfo.InvariantCulture),
                'y' => now.ToString("yy", CultureInfo.InvariantCulture),
                'b' => now.ToString("MMM", CultureInfo.InvariantCulture),
                'B' => now.ToString("MMMM", CultureInfo.InvariantCulture),
                'a' => now.ToString("ddd", CultureInfo.InvariantCulture),
                'A' => now.ToString("dddd", CultureInfo.InvariantCulture),
                'H' => now.ToString("HH", CultureInfo.InvariantCulture),
                'M' => now.ToString("mm", CultureInfo.InvariantCulture),
                'S' => now.ToString("ss", CultureInfo.InvariantCulture),
                '%' => "%",
                _ => throw new TemplateArgumentException($"the format code %{c} is not supported"),
            });
        }
        return b.ToString();
    }

    private static TemplateCallable Method(string name, Func<IReadOnlyList<object?>, object?> body) =>
        new(name, (args, kwargs) =>
        {
            if (kwargs.Count > 0) throw new TemplateArgumentException("keyword arguments are not supported");
            return body(args);
        });

    private static string? OptionalChars(IReadOnlyList<object?> args) =>
        args.Count == 0 || args[0] is null ? null : args[0] as string ?? throw new TemplateArgumentException("expects a string of characters");

    private static long IntArg(object? value, string name) =>
        value is long or bool ? TemplateValues.ToLong(value) : throw new TemplateArgumentException($"expects an integer {name}");

    private static string StringArg(IReadOnlyList<object?> args, int index, string name) =>
        index < args.Count && args[index] is string s ? s : throw new TemplateArgumentException($"expects a string {name}");

    public static TemplateCallable? StringMethod(string s, string name) => name switch
    {
        "strip" => Method(name, a => OptionalChars(a) is { } c ? s.Trim(c.ToCharArray()) : s.Trim(PythonWhitespace)),
        "lstrip" => Method(name, a => OptionalChars(a) is { } c ? s.TrimStart(c.ToCharArray()) : s.TrimStart(PythonWhitespace)),
        "rstrip" => Method(name, a => OptionalChars(a) is { } c ? s.TrimEnd(c.ToCharArray()) : s.TrimEnd(PythonWhitespace)),
        "upper" => Method(name, _ => s.ToUpperInvariant()),
        "lower" => Method(name, _ => s.ToLowerInvariant()),
        "title" => Method(name, _ => Title(s)),
        "capitalize" => Method(name, _ => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant()),
        "startswith" => Method(name, a => PrefixTest(a, p => s.StartsWith(p, StringComparison.Ordinal))),
        "endswith" => Method(name, a => PrefixTest(a, p => s.EndsWith(p, StringComparison.Ordinal))),
        "split" => Method(name, a => Split(s, a)),
        "replace" => Method(name, a =>
        {
            string old = StringArg(a, 0, "to replace"), replacement = StringArg(a, 1, "replacement");
            long count = a.Count > 2 ? IntArg(a[2], "count") : -1;
            if (count < 0) return old.Length == 0 ? string.Join(replacement, TemplateOperations.StringElements(s).Prepend("").Append("")) : s.Replace(old, replacement, StringComparison.Ordinal);
            var b = new StringBuilder();
            int pos = 0;
            for (long n = 0; n < count && old.Length > 0; n++)
            {
                int at = s.IndexOf(old, pos, StringComparison.Ordinal);
                if (at < 0) break;
                b.Append(s, pos, at - pos).Append(replacement);
                pos = at + old.Length;
            }
            return b.Append(s, pos, s.Length - pos).ToString();
        }),
        "find" => Method(name, a => (long)s.IndexOf(StringArg(a, 0, "to find"), StringComparison.Ordinal)),
        "count" => Method(name, a =>
        {
            string sub = StringArg(a, 0, "to count");
            if (sub.Length == 0) return (long)TemplateOperations.StringElements(s).Count + 1;
            long n = 0;
            for (int at = s.IndexOf(sub, StringComparison.Ordinal); at >= 0; at = s.IndexOf(sub, at + sub.Length, StringComparison.Ordinal)) n++;
            return n;
        }),
        "join" => Method(name, a => string.Join(s, TemplateOperations.Iterate(a.Count == 1 ? a[0] : throw new TemplateArgumentException("expects one iterable"), new LiteralNode(null, 0, 0))
            .Select(x => x as string ?? throw new TemplateArgumentException("expects strings")))),
        "isdigit" => Method(name, _ => s.Length > 0 && s.All(char.IsAsciiDigit)),
        "isspace" => Method(name, _ => s.Length > 0 && s.All(c => Array.IndexOf(PythonWhitespace, c) >= 0)),
        _ => null,
    };

    private static object PrefixTest(IReadOnlyList<object?> args, Func<string, bool> test) => args.Count == 1 ? args[0] switch
    {
        string p => test(p),
        List<object?> options => options.Any(o => o is string p && test(p)),
        _ => throw new TemplateArgumentException("expects a string or a list of strings"),
    } : throw new TemplateArgumentException("expects one argument");

    /// <summary>Python's str.split: with no separator, runs of whitespace split and ends are dropped.</summary>
    private static List<object?> Split(string s, IReadOnlyList<object?> args)
    {
        string? separator = args.Count > 0 && args[0] is not null ? StringArg(args, 0, "separator") : null;
        long max = args.Count > 1 ? IntArg(args[1], "maxsplit") : -1;
        var parts = new List<object?>();
        if (separator is null)
        {
            int i = 0;
            while (true)
            {
                while (i < s.Length && Array.IndexOf(PythonWhitespace, s[i]) >= 0) i++;
                if (i >= s.Length) break;
                if (max >= 0 && parts.Count == max) { parts.Add(s[i..].TrimEnd(PythonWhitespace)); break; }
                int j = i;
                while (j < s.Length && Array.IndexOf(PythonWhitespace, s[j]) < 0) j++;
                parts.Add(s[i..j]);
                i = j;
            }
            return parts;
        }
        if (separator.Length == 0) throw new TemplateArgumentException("empty separator");
        int pos = 0;
        while (max < 0 || parts.Count < max)
        {
            int at = s.IndexOf(separator, pos, StringComparison.Ordinal);
            if (at < 0) break;
            parts.Add(s[pos..at]);
            pos = at + separator.Length;
        }
        parts.Add(s[pos..]);
        return parts;
    }

    private static string Title(string s)
    {
        var b = new StringBuilder(s.Length);
        bool previousCased = false;
        foreach (char c in s)
        {
            b.Append(previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousCased = char.IsLetter(c);
        }
        return b.ToString();
    }

    public static TemplateCallable? DictMethod(Dictionary<string, object?> dict, string name) => name switch
    {
        "items" => Method(name, _ => Items(dict)),
        "keys" => Method(name, _ => dict.Keys.Cast<object?>().ToList()),
        "values" => Method(name, _ => dict.Values.ToList()),
        "get" => Method(name, a => a.Count is 1 or 2 && a[0] is string k
            ? (dict.TryGetValue(k, out object? v) ? v : a.Count == 2 ? a[1] : null)
            : throw new TemplateArgumentException("expects a key and an optional default")),
        _ => null,
    };

    private static List<object?> Items(Dictionary<string, object?> dict) =>
        dict.Select(kv => (object?)new TemplateTuple { kv.Key, kv.Value }).ToList();

    public static object? ApplyFilter(string name, object? value, IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs, TemplateNode at)
    {
        object? Arg(int index, string keyword, object? fallback) =>
            index < args.Count ? args[index] : kwargs.TryGetValue(keyword, out object? v) ? v : fallback;

        switch (name)
        {
            case "trim":
                return Arg(0, "chars", null) is string chars ? Text(value, at).Trim(chars.ToCharArray()) : Text(value, at).Trim(PythonWhitespace);
            case "length" or "count":
                return value switch
                {
                    Undefined => 0L,
                    string s => (long)TemplateOperations.StringElements(s).Count,
                    List<object?> list => (long)list.Count,
                    Dictionary<string, object?> dict => (long)dict.Count,
                    _ => throw at.Error($"a {TemplateValues.TypeName(value)} has no length"),
                };
            case "upper": return Text(value, at).ToUpperInvariant();
            case "lower": return Text(value, at).ToLowerInvariant();
            case "capitalize": return Text(value, at) is { Length: > 0 } c ? char.ToUpperInvariant(c[0]) + c[1..].ToLowerInvariant() : "";
            case "title": return Title(Text(value, at));
            case "string": return TemplateValues.ToStr(value);
            case "int":
                return value switch
                {
                    long or bool => TemplateValues.ToLong(value),
                    double d => (long)Math.Truncate(d),
                    string s when long.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long l) => l,
                    _ => Arg(0, "default", 0L),
                };
            case "default" or "d":
            {
                bool boolean = TemplateValues.IsTrue(Arg(1, "boolean", false));
                bool useDefault = value is Undefined || (boolean && !TemplateValues.IsTrue(value));
                return useDefault ? Arg(0, "default_value", "") : value;
            }
            case "first":
            {
                List<object?> items = TemplateOperations.Iterate(value, at);
                return items.Count > 0 ? items[0] : new Undefined("there is no first item of an empty sequence");
            }
            case "last":
            {
                List<object?> items = TemplateOperations.Iterate(value, at);
                return items.Count > 0 ? items[^1] : new Undefined("there is no last item of an empty sequence");
            }
            case "join":
            {
                string separator = TemplateValues.ToStr(Arg(0, "d", ""));
                object? attribute = Arg(1, "attribute", null);
                IEnumerable<object?> items = TemplateOperations.Iterate(value, at);
                if (attribute is not null) items = items.Select(x => TemplateOperations.Get(x, attribute, true, at));
                return string.Join(separator, items.Select(TemplateValues.ToStr));
            }
            case "list": return TemplateOperations.Iterate(value, at);
            case "items":
                return value switch
                {
                    Undefined => new List<object?>(),
                    Dictionary<string, object?> dict => Items(dict),
                    _ => throw at.Error($"the items filter needs a dict, not a {TemplateValues.TypeName(value)}"),
                };
            case "tojson":
            {
                // transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
                object? indent = Arg(1, "indent", null);
                if (indent is not (null or long)) throw new TemplateArgumentException("indent must be an integer");
                object? separators = Arg(2, "separators", null);
                string itemSeparator = indent is null ? ", " : ",", keySeparator = ": ";
                if (separators is not null)
                {
                    if (separators is not List<object?> { Count: 2 } pair || pair[0] is not string item || pair[1] is not string key)
                        throw new TemplateArgumentException("separators must be a pair of strings");
                    (itemSeparator, keySeparator) = (item, key);
                }
                var style = new JsonStyle(indent is long n ? (int)n : null, itemSeparator, keySeparator,
                    TemplateValues.IsTrue(Arg(3, "sort_keys", false)), TemplateValues.IsTrue(Arg(0, "ensure_ascii", false)));
                var b = new StringBuilder();
                WriteJson(b, value, style, 0, at);
                return b.ToString();
            }
            case "select" or "reject":
            {
                bool keep = name == "select";
                if (args.Count == 0) return TemplateOperations.Iterate(value, at).Where(x => TemplateValues.IsTrue(x) == keep).ToList();
                string test = args[0] as string ?? throw new TemplateArgumentException("the first argument names a test");
                var testArgs = args.Skip(1).ToList();
                return TemplateOperations.Iterate(value, at).Where(x => ApplyTest(test, x, testArgs, at) == keep).ToList();
            }
            case "selectattr" or "rejectattr":
            {
                bool keep = name == "selectattr";
                object attribute = args.Count > 0 && args[0] is string a ? a : throw new TemplateArgumentException("the first argument names an attribute");
                string? test = args.Count > 1 ? args[1] as string ?? throw new TemplateArgumentException("the second argument names a test") : null;
                var testArgs = args.Skip(2).ToList();
                return TemplateOperations.Iterate(value, at).Where(x =>
                {
                    object? v = TemplateOperations.Get(x, attribute, true, at);
                    return (test is null ? TemplateValues.IsTrue(v) : ApplyTest(test, v, testArgs, at)) == keep;
                }).ToList();
            }
            case "map":
            {
                object attribute = kwargs.TryGetValue("attribute", out object? a) && a is string s ? s
                    : throw new TemplateArgumentException("only map(attribute='...') is supported");
                return TemplateOperations.Iterate(value, at).Select(x => TemplateOperations.Get(x, attribute, true, at)).ToList();
            }
            case "replace":
            {
                string text = Text(value, at);
                string old = TemplateValues.ToStr(Arg(0, "old", "")), replacement = TemplateValues.ToStr(Arg(1, "new", ""));
                return old.Length == 0 ? text : text.Replace(old, replacement, StringComparison.Ordinal);
            }
            case "reverse":
                return value is string rs ? string.Concat(TemplateOperations.StringElements(rs).AsEnumerable().Reverse())
                    : TemplateOperations.Iterate(value, at).AsEnumerable().Reverse().ToList();
            case "abs":
                return value switch { long l => (object)Math.Abs(l), double dd => (object)Math.Abs(dd), bool bb => (object)(bb ? 1L : 0L), _ => throw at.Error("abs needs a number") };
            case "safe":
                return value;
            default:
                throw at.Error($"the filter '{name}' is not supported by this chat template engine");
        }
    }

    private static string Text(object? value, TemplateNode at) => value switch
    {
        string s => s,
        _ => TemplateValues.ToStr(value),
    };

    public static bool ApplyTest(string name, object? value, IReadOnlyList<object?> args, TemplateNode at)
    {
        object? Arg() => args.Count == 1 ? args[0] : throw new TemplateArgumentException("expects one argument");
        return name switch
        {
            "defined" => value is not Undefined,
            "undefined" => value is Undefined,
            "none" => value is null,
            "string" => value is string,
            "number" => value is long or double,
            "integer" => value is long,
            "float" => value is double,
            "boolean" => value is bool,
            "true" => value is true,
            "false" => value is false,
            "mapping" => value is Dictionary<string, object?>,
            "sequence" => value is string or List<object?> or Dictionary<string, object?>,
            "iterable" => value is string or List<object?> or Dictionary<string, object?> or Undefined,
            "callable" => value is TemplateCallable,
            "odd" => value is long or bool ? TemplateValues.ToLong(value) % 2 != 0 : throw at.Error("the odd test needs an integer"),
            "even" => value is long or bool ? TemplateValues.ToLong(value) % 2 == 0 : throw at.Error("the even test needs an integer"),
            "divisibleby" => value is long or bool && Arg() is long or bool
                ? TemplateValues.ToLong(Arg()) != 0 && TemplateValues.ToLong(value) % TemplateValues.ToLong(Arg()) == 0
                : throw at.Error("the divisibleby test needs integers"),
            "lower" => value is string ls && ls == ls.ToLowerInvariant(),
            "upper" => value is string us && us == us.ToUpperInvariant(),
            "equalto" or "eq" or "==" or "sameas" => TemplateValues.AreEqual(value, Arg()),
            "ne" or "!=" => !TemplateValues.AreEqual(value, Arg()),
            "in" => TemplateOperations.Compare("in", value, Arg(), at),
            "gt" or ">" => TemplateOperations.Compare(">", value, Arg(), at),
            "ge" or ">=" => TemplateOperations.Compare(">=", value, Arg(), at),
            "lt" or "<" => TemplateOperations.Compare("<", value, Arg(), at),
            "le" or "<=" => TemplateOperations.Compare("<=", value, Arg(), at),
            _ => throw at.Error($"the test '{name}' is not supported by this chat template engine"),
        };
    }

    private sealed record JsonStyle(int? Indent, string ItemSeparator, string KeySeparator, bool SortKeys, bool EnsureAscii);

    /// <summary>
    /// Python's <c>json.dumps</c>: with no indent, items on one line separated by ", " and ": "; with an indent, each
    /// item on its own line after ","; non-ASCII text written as itself unless <c>ensure_ascii</c>.
    /// </summary>
    private static void WriteJson(StringBuilder b, object? value, JsonStyle style, int level, TemplateNode at)
    {
        if (level > 64) throw at.Error("tojson: the value is nested too deeply");
        switch (value)
        {
            case null: b.Append("null"); return;
            case bool v: b.Append(v ? "true" : "false"); return;
            case long l: b.Append(l.ToString(CultureInfo.InvariantCulture)); return;
            case double d:
                b.Append(double.IsNaN(d) ? "NaN" : double.IsInfinity(d) ? (d > 0 ? "Infinity" : "-Infinity") : TemplateValues.FloatRepr(d));
                return;
            case string s: WriteJsonString(b, s, style.EnsureAscii); return;
            case List<object?> list:
                WriteJsonContainer(b, '[', ']', list.Count, style, level, i => WriteJson(b, list[i], style, level + 1, at));
                return;
            case Dictionary<string, object?> dict:
            {
                var pairs = style.SortKeys ? dict.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList() : dict.ToList();
                WriteJsonContainer(b, '{', '}', pairs.Count, style, level, i =>
                {
                    WriteJsonString(b, pairs[i].Key, style.EnsureAscii);
                    b.Append(style.KeySeparator);
                    WriteJson(b, pairs[i].Value, style, level + 1, at);
                });
                return;
            }
            case Undefined u: throw u.Fail(at.Line, at.Column);
            default: throw at.Error($"tojson: Object of type {TemplateValues.TypeName(value)} is not JSON serializable");
        }
    }

    private static void WriteJsonContainer(StringBuilder b, char open, char close, int count, JsonStyle style, int level, Action<int> writeItem)
    {
        if (count == 0) { b.Append(open).Append(close); return; }
        b.Append(open);
        for (int i = 0; i < count; i++)
        {
            if (i > 0) b.Append(style.ItemSeparator);
            if (style.Indent is int n) b.Append('\n').Append(' ', n * (level + 1));
            writeItem(i);
        }
        if (style.Indent is int m) b.Append('\n').Append(' ', m * level);
        b.Append(close);
    }

    private static void WriteJsonString(StringBuilder b, string s, bool ensureAscii)
    {
        b.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': b.Append("\\\""); break;
                case '\\': b.Append("\\\\"); break;
                case '\n': b.Append("\\n"); break;
                case '\r': b.Append("\\r"); break;
                case '\t': b.Append("\\t"); break;
                case '\b': b.Append("\\b"); break;
                case '\f': b.Append("\\f"); break;
                default:
                    // A character outside the BMP is two UTF-16 units here, which is what Python writes as \ud83d\ude00.
                    if (c < 0x20 || (ensureAscii && c > 0x7e)) b.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else b.Append(c);
                    break;
            }
        }
        b.Append('"');
    }
}
