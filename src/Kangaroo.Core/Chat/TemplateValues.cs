using System.Globalization;
using System.Text;

namespace Kangaroo.Chat;

/// <summary>
/// A name or attribute that does not exist. As jinja2's default <c>Undefined</c>, it renders as empty, is falsy,
/// iterates as empty and has length 0, but using it in arithmetic or looking an attribute up on it is an error.
/// </summary>
internal sealed class Undefined(string description)
{
    /// <summary>What was looked up, for the error message: "'x' is undefined", "'dict object' has no attribute 'a'".</summary>
    public string Description { get; } = description;

    public ChatTemplateException Fail(int line, int column) =>
        new($"chat template error at line {line}, column {column}: {Description}", line, column);
}

/// <summary>A Python tuple (<c>(1, 2)</c>, <c>dict.items()</c> pairs): a list that shows itself as <c>(1, 2)</c>.</summary>
internal sealed class TemplateTuple : List<object?>
{
    public TemplateTuple() { }
    public TemplateTuple(IEnumerable<object?> items) : base(items) { }
}

/// <summary>The object <c>namespace(...)</c> makes: attributes that a <c>{% set ns.x = ... %}</c> inside a loop can change.</summary>
internal sealed class TemplateNamespace
{
    public Dictionary<string, object?> Attributes { get; } = new(StringComparer.Ordinal);
}

/// <summary>The <c>loop</c> variable inside a for loop.</summary>
internal sealed class LoopInfo(int index0, int length, object? previous, object? next)
{
    public object? Get(string name) => name switch
    {
        "index" => (long)index0 + 1,
        "index0" => (long)index0,
        "revindex" => (long)(length - index0),
        "revindex0" => (long)(length - index0 - 1),
        "first" => index0 == 0,
        "last" => index0 == length - 1,
        "length" => (long)length,
        "previtem" => index0 > 0 ? previous : new Undefined("there is no previous item"),
        "nextitem" => index0 < length - 1 ? next : new Undefined("there is no next item"),
        _ => new Undefined($"'loop' has no attribute '{name}'"),
    };
}

/// <summary>A function value: a global such as <c>raise_exception</c>, or a method bound to its object (<c>s.strip</c>).</summary>
internal sealed class TemplateCallable(string name, Func<IReadOnlyList<object?>, IReadOnlyDictionary<string, object?>, object?> invoke)
{
    public string Name { get; } = name;
    public object? Invoke(IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs) => invoke(args, kwargs);
}

/// <summary>
/// Python's view of template values, which are null (None), <see cref="Undefined"/>, bool, long, double, string,
/// <c>List&lt;object?&gt;</c> (lists and tuples), <c>Dictionary&lt;string, object?&gt;</c> (dicts, in insertion order),
/// <see cref="TemplateNamespace"/>, <see cref="LoopInfo"/> and <see cref="TemplateCallable"/>. Rendering must match
/// jinja2 byte for byte, so <c>str()</c>, truthiness and equality follow Python exactly where templates can observe it.
/// </summary>
internal static class TemplateValues
{
    public static bool IsTrue(object? value) => value switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> list => list.Count > 0,
        Dictionary<string, object?> dict => dict.Count > 0,
        _ => true,
    };

    /// <summary>Python's <c>str(value)</c>, except that undefined is empty (as jinja2 renders it).</summary>
    public static string ToStr(object? value) => value switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(value),
    };

    /// <summary>Python's <c>repr(value)</c>, which is how lists and dicts show their items.</summary>
    public static string Repr(object? value)
    {
        switch (value)
        {
            case null: return "None";
            case Undefined: return "";
            case bool b: return b ? "True" : "False";
            case long l: return l.ToString(CultureInfo.InvariantCulture);
            case double d: return FloatRepr(d);
            case string s: return StringRepr(s);
            case TemplateTuple tuple: return tuple.Count == 1 ? "(" + Repr(tuple[0]) + ",)" : "(" + string.Join(", ", tuple.Select(Repr)) + ")";
            case List<object?> list: return "[" + string.Join(", ", list.Select(Repr)) + "]";
            case Dictionary<string, object?> dict:
                return "{" + string.Join(", ", dict.Select(kv => StringRepr(kv.Key) + ": " + Repr(kv.Value))) + "}";
            case TemplateNamespace ns:
                return "<Namespace {" + string.Join(", ", ns.Attributes.Select(kv => StringRepr(kv.Key) + ": " + Repr(kv.Value))) + "}>";
            case TemplateCallable f: return $"<function {f.Name}>";
            case LoopInfo: return "<LoopContext>";
            default: return value.ToString() ?? "";
        }
    }

    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        string r = d.ToString("R", CultureInfo.InvariantCulture);
        if (r.Contains('E'))
        {
            // Python writes 1e+16 / 1e-05: a two-digit exponent at least, with its sign.
            int e = r.IndexOf('E');
            string mantissa = r[..e];
            int exponent = int.Parse(r[(e + 1)..], CultureInfo.InvariantCulture);
            return mantissa + "e" + (exponent < 0 ? "-" : "+") + Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture);
        }
        return r.Contains('.') ? r : r + ".0";
    }

    /// <summary>Python's repr of a str: single quotes unless the text has a single quote and no double quote.</summary>
    private static string StringRepr(string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var b = new StringBuilder().Append(quote);
        foreach (char c in s)
        {
            switch (c)
            {
                case '\\': b.Append("\\\\"); break;
                case '\n': b.Append("\\n"); break;
                case '\r': b.Append("\\r"); break;
                case '\t': b.Append("\\t"); break;
                default:
                    if (c == quote) b.Append('\\').Append(c);
                    else if (c < 0x20 || c == 0x7f) b.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    else b.Append(c);
                    break;
            }
        }
        return b.Append(quote).ToString();
    }

    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        Undefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        TemplateTuple => "tuple",
        List<object?> => "list",
        Dictionary<string, object?> => "dict",
        TemplateNamespace => "Namespace",
        TemplateCallable => "function",
        _ => value.GetType().Name,
    };

    /// <summary>Python's <c>==</c>: numbers (and bools, which are ints) compare by value, containers item by item.</summary>
    public static bool AreEqual(object? a, object? b)
    {
        if (a is Undefined || b is Undefined) return a is Undefined && b is Undefined;
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? ToDouble(a) == ToDouble(b) : ToLong(a) == ToLong(b);
        return (a, b) switch
        {
            (null, null) => true,
            (string x, string y) => x == y,
            (List<object?> x, List<object?> y) => x is TemplateTuple == y is TemplateTuple && x.Count == y.Count && x.Zip(y).All(p => AreEqual(p.First, p.Second)),
            (Dictionary<string, object?> x, Dictionary<string, object?> y) =>
                x.Count == y.Count && x.All(kv => y.TryGetValue(kv.Key, out object? v) && AreEqual(kv.Value, v)),
            _ => ReferenceEquals(a, b),
        };
    }

    public static bool IsNumber(object? v) => v is long or double or bool;

    public static double ToDouble(object? v) => v switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new InvalidCastException(),
    };

    public static long ToLong(object? v) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        double d => (long)d,
        _ => throw new InvalidCastException(),
    };

    /// <summary>
    /// A value given by the caller (extra variables, message fields) as a template value: strings, numbers, bools,
    /// dictionaries with string keys, sequences and <see cref="System.Text.Json.JsonElement"/>s, recursively.
    /// </summary>
    public static object? FromClr(object? value, int depth = 0)
    {
        if (depth > 64) throw new ArgumentException("a chat template variable is nested more than 64 levels deep");
        switch (value)
        {
            case null: return null;
            case string or bool or long or double or Undefined or TemplateNamespace or TemplateCallable: return value;
            case int i: return (long)i;
            case short s: return (long)s;
            case byte b: return (long)b;
            case uint u: return (long)u;
            case float f: return (double)f;
            case decimal m: return (double)m;
            case System.Text.Json.JsonElement e: return FromJson(e);
            case ChatMessage message:
                return new Dictionary<string, object?>(StringComparer.Ordinal) { ["role"] = message.Role, ["content"] = message.Content };
            case System.Collections.IDictionary dict:
            {
                var result = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (System.Collections.DictionaryEntry entry in dict)
                    result[entry.Key as string ?? throw new ArgumentException("chat template dictionaries need string keys")] = FromClr(entry.Value, depth + 1);
                return result;
            }
            case IEnumerable<KeyValuePair<string, object?>> pairs:
                return pairs.ToDictionary(kv => kv.Key, kv => FromClr(kv.Value, depth + 1), StringComparer.Ordinal);
            case System.Collections.IEnumerable items:
                return items.Cast<object?>().Select(x => FromClr(x, depth + 1)).ToList();
            default:
                throw new ArgumentException($"a chat template variable cannot be a {value.GetType().Name}");
        }
    }

    public static object? FromJson(System.Text.Json.JsonElement e) => e.ValueKind switch
    {
        System.Text.Json.JsonValueKind.String => e.GetString(),
        System.Text.Json.JsonValueKind.True => true,
        System.Text.Json.JsonValueKind.False => false,
        System.Text.Json.JsonValueKind.Null or System.Text.Json.JsonValueKind.Undefined => null,
        System.Text.Json.JsonValueKind.Number => e.TryGetInt64(out long l) ? (object)l : e.GetDouble(),
        System.Text.Json.JsonValueKind.Array => e.EnumerateArray().Select(FromJson).ToList(),
        _ => e.EnumerateObject().Aggregate(new Dictionary<string, object?>(StringComparer.Ordinal),
            (d, p) => { d[p.Name] = FromJson(p.Value); return d; }),
    };
}
