namespace Kangaroo.Chat;

/// <summary>Python's operators on template values, as jinja2 evaluates them (in its immutable sandbox).</summary>
internal static class TemplateOperations
{
    /// <summary>The items a for loop or unpacking sees: a list's items, a dict's keys, a string's characters.</summary>
    public static List<object?> Iterate(object? value, TemplateNode at) => value switch
    {
        Undefined => [],
        List<object?> list => [.. list],
        Dictionary<string, object?> dict => dict.Keys.Cast<object?>().ToList(),
        string s => StringElements(s).Cast<object?>().ToList(),
        _ => throw at.Error($"a {TemplateValues.TypeName(value)} is not iterable"),
    };

    /// <summary>A string's characters as Python sees them: one per code point, so a surrogate pair stays whole.</summary>
    public static List<string> StringElements(string s)
    {
        var result = new List<string>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                result.Add(s.Substring(i, 2));
                i++;
            }
            else result.Add(s[i].ToString());
        }
        return result;
    }

    public static object? Get(object? target, object? key, bool isAttribute, TemplateNode at)
    {
        if (target is Undefined u) throw u.Fail(at.Line, at.Column);
        switch (target)
        {
            case Dictionary<string, object?> dict:
                if (isAttribute && key is string method && TemplateBuiltins.DictMethod(dict, method) is { } bound) return bound;
                if (key is string k && dict.TryGetValue(k, out object? value)) return value;
                if (!isAttribute && key is string m && TemplateBuiltins.DictMethod(dict, m) is { } boundItem) return boundItem;
                return new Undefined($"'dict object' has no attribute {TemplateValues.Repr(key)}");
            case List<object?> list:
                if (key is long or bool)
                {
                    long index = TemplateValues.ToLong(key);
                    if (index < 0) index += list.Count;
                    return index >= 0 && index < list.Count ? list[(int)index] : new Undefined($"'list object' has no element {key}");
                }
                return new Undefined($"'list object' has no attribute {TemplateValues.Repr(key)}");
            case string s:
                if (key is long or bool)
                {
                    List<string> chars = StringElements(s);
                    long index = TemplateValues.ToLong(key);
                    if (index < 0) index += chars.Count;
                    return index >= 0 && index < chars.Count ? chars[(int)index] : new Undefined($"'str object' has no element {key}");
                }
                if (key is string name && TemplateBuiltins.StringMethod(s, name) is { } stringMethod) return stringMethod;
                return new Undefined($"'str object' has no attribute {TemplateValues.Repr(key)}");
            case TemplateNamespace ns:
                return key is string a && ns.Attributes.TryGetValue(a, out object? attr) ? attr : new Undefined($"'Namespace' has no attribute {TemplateValues.Repr(key)}");
            case LoopInfo loop:
                return key is string l ? loop.Get(l) : new Undefined("'loop' has no such item");
            default:
                return new Undefined($"'{TemplateValues.TypeName(target)} object' has no attribute {TemplateValues.Repr(key)}");
        }
    }

    /// <summary>Python slicing, <c>xs[start:stop:step]</c> with negative and missing bounds.</summary>
    public static object? Slice(object? target, object? start, object? stop, object? step, TemplateNode at)
    {
        if (target is Undefined u) throw u.Fail(at.Line, at.Column);
        List<object?> items = target switch
        {
            List<object?> list => list,
            string s => StringElements(s).Cast<object?>().ToList(),
            _ => throw at.Error($"a {TemplateValues.TypeName(target)} cannot be sliced"),
        };
        long n = items.Count;
        long stepValue = Bound(step, at) ?? 1;
        if (stepValue == 0) throw at.Error("slice step cannot be zero");
        long Clamp(long? bound, long whenMissing, long low, long high)
        {
            if (bound is not long b) return whenMissing;
            if (b < 0) b += n;
            return Math.Clamp(b, low, high);
        }
        var result = new List<object?>();
        if (stepValue > 0)
        {
            long from = Clamp(Bound(start, at), 0, 0, n), to = Clamp(Bound(stop, at), n, 0, n);
            for (long i = from; i < to; i += stepValue) result.Add(items[(int)i]);
        }
        else
        {
            long from = Clamp(Bound(start, at), n - 1, -1, n - 1), to = Clamp(Bound(stop, at), -1, -1, n - 1);
            for (long i = from; i > to; i += stepValue) result.Add(items[(int)i]);
        }
        return target switch
        {
            string => string.Concat(result.Cast<string>()),
            TemplateTuple => new TemplateTuple(result),
            _ => result,
        };
    }

    private static long? Bound(object? value, TemplateNode at) => value switch
    {
        null => null,
        long or bool => TemplateValues.ToLong(value),
        _ => throw at.Error($"slice bounds must be integers or none, not {TemplateValues.TypeName(value)}"),
    };

    public static object? Negate(object? value, bool negative, TemplateNode at) => value switch
    {
        // Each arm is boxed on its own: a switch with long and double arms would make every result a double.
        long l => (object)(negative ? -l : l),
        bool b => (object)(negative ? -(b ? 1L : 0L) : (b ? 1L : 0L)),
        double d => (object)(negative ? -d : d),
        Undefined u => throw u.Fail(at.Line, at.Column),
        _ => throw at.Error($"bad operand type for unary {(negative ? "-" : "+")}: {TemplateValues.TypeName(value)}"),
    };

    public static object? Binary(string op, object? left, object? right, TemplateNode at)
    {
        if (op == "~")
            return TemplateValues.ToStr(left) + TemplateValues.ToStr(right);
        if (left is Undefined ul) throw ul.Fail(at.Line, at.Column);
        if (right is Undefined ur) throw ur.Fail(at.Line, at.Column);

        if (TemplateValues.IsNumber(left) && TemplateValues.IsNumber(right))
            return Arithmetic(op, left, right, at);
        switch (op, left, right)
        {
            case ("+", string a, string b): return a + b;
            case ("+", List<object?> a, List<object?> b): return a.Concat(b).ToList();
            case ("*", string s, long or bool):
            case ("*", long or bool, string):
            {
                string text = left as string ?? (string)right!;
                long times = Math.Max(0, TemplateValues.ToLong(left is string ? right : left));
                if (times * text.Length > RenderContext.MaxOutputChars) throw at.Error("string repetition is too large");
                return string.Concat(Enumerable.Repeat(text, (int)times));
            }
            case ("%", string, _):
                throw at.Error("printf-style string formatting ('...' % value) is not supported in chat templates");
        }
        throw at.Error($"unsupported operand types for {op}: '{TemplateValues.TypeName(left)}' and '{TemplateValues.TypeName(right)}'");
    }

    private static object? Arithmetic(string op, object? left, object? right, TemplateNode at)
    {
        bool floating = left is double || right is double;
        if (op == "/")
        {
            double divisor = TemplateValues.ToDouble(right);
            if (divisor == 0) throw at.Error("division by zero");
            return TemplateValues.ToDouble(left) / divisor;
        }
        if (floating)
        {
            double a = TemplateValues.ToDouble(left), b = TemplateValues.ToDouble(right);
            if ((op is "//" or "%") && b == 0) throw at.Error("float division by zero");
            return op switch
            {
                "+" => a + b,
                "-" => a - b,
                "*" => a * b,
                "//" => Math.Floor(a / b),
                "%" => a - b * Math.Floor(a / b),
                "**" => Math.Pow(a, b),
                _ => throw at.Error($"unknown operator {op}"),
            };
        }
        long x = TemplateValues.ToLong(left), y = TemplateValues.ToLong(right);
        checked
        {
            try
            {
                switch (op)
                {
                    case "+": return x + y;
                    case "-": return x - y;
                    case "*": return x * y;
                    case "//":
                    case "%":
                    {
                        if (y == 0) throw at.Error("integer division or modulo by zero");
                        // Python floors: -7 // 2 == -4 and -7 % 3 == 2.
                        long quotient = x / y, remainder = x % y;
                        if (remainder != 0 && (remainder < 0) != (y < 0)) { quotient--; remainder += y; }
                        return op == "//" ? quotient : remainder;
                    }
                    case "**":
                    {
                        if (y < 0) return Math.Pow(x, y);
                        // By squaring, so that 1 ** 10**12 takes 40 steps, not 10**12 (overflow still reports).
                        long result = 1, power = x;
                        for (long e = y; e > 0; e >>= 1)
                        {
                            if ((e & 1) != 0) result *= power;
                            if (e > 1) power *= power;
                        }
                        return result;
                    }
                    default: throw at.Error($"unknown operator {op}");
                }
            }
            catch (OverflowException)
            {
                throw at.Error($"integer overflow in {x} {op} {y}");
            }
        }
    }

    public static bool Compare(string op, object? left, object? right, TemplateNode at)
    {
        switch (op)
        {
            case "==": return TemplateValues.AreEqual(left, right);
            case "!=": return !TemplateValues.AreEqual(left, right);
            case "in": return Contains(right, left, at);
            case "not in": return !Contains(right, left, at);
        }
        int order;
        if (TemplateValues.IsNumber(left) && TemplateValues.IsNumber(right))
            order = TemplateValues.ToDouble(left).CompareTo(TemplateValues.ToDouble(right));
        else if (left is string a && right is string b)
            order = string.CompareOrdinal(a, b);
        else
        {
            if (left is Undefined ul) throw ul.Fail(at.Line, at.Column);
            if (right is Undefined ur) throw ur.Fail(at.Line, at.Column);
            throw at.Error($"'{op}' not supported between '{TemplateValues.TypeName(left)}' and '{TemplateValues.TypeName(right)}'");
        }
        return op switch
        {
            "<" => order < 0,
            ">" => order > 0,
            "<=" => order <= 0,
            ">=" => order >= 0,
            _ => throw at.Error($"unknown comparison {op}"),
        };
    }

    private static bool Contains(object? container, object? item, TemplateNode at) => container switch
    {
        Undefined => false,
        string s when item is string sub => s.Contains(sub, StringComparison.Ordinal),
        string => throw at.Error($"'in <string>' requires a string as left operand, not {TemplateValues.TypeName(item)}"),
        List<object?> list => list.Any(x => TemplateValues.AreEqual(x, item)),
        Dictionary<string, object?> dict => item is string key && dict.ContainsKey(key),
        TemplateNamespace ns => item is string name && ns.Attributes.ContainsKey(name),
        _ => throw at.Error($"argument of type '{TemplateValues.TypeName(container)}' is not iterable"),
    };
}
