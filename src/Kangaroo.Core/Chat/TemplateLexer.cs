using System.Globalization;
using System.Text;

namespace Kangaroo.Chat;

internal enum TokenKind { Name, String, Integer, Float, Operator, End }

/// <summary>One token inside a <c>{{ }}</c> or <c>{% %}</c> tag, with its 1-based place in the template for error messages.</summary>
internal readonly record struct TemplateToken(TokenKind Kind, string Text, object? Value, int Line, int Column)
{
    public bool Is(string text) => (Kind == TokenKind.Operator || Kind == TokenKind.Name) && Text == text;

    public string Describe() => Kind switch
    {
        TokenKind.End => "the end of the tag",
        TokenKind.String => "a string",
        _ => $"'{Text}'",
    };
}

internal enum SegmentKind { Text, Output, Statement }

/// <summary>Literal text, or the tokens of one <c>{{ expression }}</c> (Output) or <c>{% statement %}</c> tag.</summary>
internal sealed record TemplateSegment(SegmentKind Kind, string Text, IReadOnlyList<TemplateToken> Tokens, int Line, int Column);

/// <summary>
/// Splits a template into text and tags, applying whitespace control the way jinja2's lexer does in the environment
/// transformers builds (<c>trim_blocks=True</c>, <c>lstrip_blocks=True</c>): the text before <c>{%</c> or <c>{#</c> loses
/// the spaces and tabs that start its line, one newline right after <c>%}</c> or <c>#}</c> is dropped, a <c>-</c> inside a
/// delimiter strips all whitespace on that side and a <c>+</c> turns the block rules off for that tag.
/// </summary>
internal sealed class TemplateLexer
{
    private readonly string _source;
    private readonly int[] _lineStarts;

    private TemplateLexer(string source)
    {
        source = NormalizeNewlines(source);
        _source = source;
        var starts = new List<int> { 0 };
        for (int i = 0; i < source.Length; i++)
            if (source[i] == '\n') starts.Add(i + 1);
        _lineStarts = starts.ToArray();
    }

    public static List<TemplateSegment> Tokenize(string source) => new TemplateLexer(source).Run();

    /// <summary>
    /// jinja2 reads a template as <c>"\n".join(source.splitlines())</c>: every line break Python knows (\r\n, \r, \v,
    /// \f, \x1c-\x1e, \x85, \u2028, \u2029) becomes \n, and one line break at the very end is dropped
    /// (<c>keep_trailing_newline=False</c>). Columns in error messages count in this text.
    /// </summary>
    private static string NormalizeNewlines(string source)
    {
        var b = new StringBuilder(source.Length);
        for (int i = 0; i < source.Length; i++)
        {
            char c = source[i];
            if (c == '\r' && i + 1 < source.Length && source[i + 1] == '\n') continue;
            b.Append(c is '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029' ? '\n' : c);
        }
        if (b.Length > 0 && b[^1] == '\n') b.Length--;
        return b.ToString();
    }

    /// <summary>The 1-based line and column of a character offset.</summary>
    public (int Line, int Column) Place(int offset)
    {
        int index = Array.BinarySearch(_lineStarts, offset);
        if (index < 0) index = ~index - 1;
        return (index + 1, offset - _lineStarts[index] + 1);
    }

    private ChatTemplateException Error(int offset, string message)
    {
        var (line, column) = Place(offset);
        return new ChatTemplateException($"chat template syntax error at line {line}, column {column}: {message}", line, column);
    }

    private List<TemplateSegment> Run()
    {
        var segments = new List<TemplateSegment>();
        string s = _source;
        int pos = 0;
        // jinja2 lstrips a tag at the very start of the template, or one whose text began right after a newline that
        // the previous tag consumed (trim_blocks), as if that text started a line.
        bool lineStarting = true;
        while (pos < s.Length)
        {
            int start = FindTagStart(pos);
            string data = s.Substring(pos, (start < 0 ? s.Length : start) - pos);
            if (start < 0)
            {
                AddText(segments, data, pos);
                break;
            }

            char kind = s[start + 1];
            int p = start + 2;
            char sign = p < s.Length && (s[p] == '-' || s[p] == '+') ? s[p] : '\0';
            if (sign == '-')
                data = data.TrimEnd(PythonWhitespace);
            else if (sign != '+' && kind != '{')
            {
                int lineStart = data.LastIndexOf('\n') + 1;
                if ((lineStart > 0 || lineStarting) && data.AsSpan(lineStart).TrimStart(" \t").IsEmpty)
                    data = data[..lineStart];
            }
            if (sign != '\0') p++;
            AddText(segments, data, pos);

            int end;
            if (kind == '#')
            {
                int close = s.IndexOf("#}", p, StringComparison.Ordinal);
                if (close < 0) throw Error(start, "the comment opened here is never closed with '#}'");
                end = close + 2;
                end = AfterTag(end, stripAll: close > p && s[close - 1] == '-', trimNewline: !(close > p && s[close - 1] == '+'));
            }
            else
            {
                var tokens = new List<TemplateToken>();
                int close = TokenizeTag(p, kind == '{' ? '}' : '%', start, tokens, out bool stripAfter, out bool keepNewline);
                var (line, column) = Place(start);
                segments.Add(new TemplateSegment(kind == '{' ? SegmentKind.Output : SegmentKind.Statement, "", tokens, line, column));
                end = AfterTag(close, stripAll: stripAfter, trimNewline: kind == '%' && !keepNewline);
            }
            lineStarting = end > 0 && s[end - 1] == '\n';
            pos = end;
        }
        return segments;
    }

    private static readonly char[] PythonWhitespace = [' ', '\t', '\n', '\r', '\f', '\v'];

    private void AddText(List<TemplateSegment> segments, string text, int offset)
    {
        if (text.Length == 0) return;
        var (line, column) = Place(offset);
        segments.Add(new TemplateSegment(SegmentKind.Text, text, [], line, column));
    }

    private int FindTagStart(int from)
    {
        for (int i = from; i + 1 < _source.Length; i++)
            if (_source[i] == '{' && _source[i + 1] is '{' or '%' or '#')
                return i;
        return -1;
    }

    /// <summary>Where the text after a tag starts: past all whitespace after <c>-%}</c>, past one newline after <c>%}</c>.</summary>
    private int AfterTag(int end, bool stripAll, bool trimNewline)
    {
        string s = _source;
        if (stripAll)
        {
            while (end < s.Length && Array.IndexOf(PythonWhitespace, s[end]) >= 0) end++;
        }
        else if (trimNewline)
        {
            if (end < s.Length && s[end] == '\n') end++;
        }
        return end;
    }

    private static readonly string[] Operators =
        ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "|", ".", ",", ":", "(", ")", "[", "]", "{", "}", "<", ">", "="];

    /// <summary>
    /// Reads tokens up to the tag's closing delimiter (<paramref name="closer"/> then <c>}</c>) and returns the offset
    /// just past it. A <c>}}</c> inside an expression closes a dict literal, not the tag, while braces are open.
    /// </summary>
    private int TokenizeTag(int p, char closer, int tagStart, List<TemplateToken> tokens, out bool stripAfter, out bool keepNewline)
    {
        string s = _source;
        int depth = 0;
        string opener = closer == '}' ? "{{" : "{%";
        while (true)
        {
            while (p < s.Length && char.IsWhiteSpace(s[p])) p++;
            if (p >= s.Length)
                throw Error(tagStart, $"the '{opener}' tag opened here is never closed with '{closer}}}'");

            if (depth == 0)
            {
                if ((s[p] == '-' || s[p] == '+') && At(p + 1, closer) && At(p + 2, '}'))
                {
                    AddEnd(tokens, p);
                    stripAfter = s[p] == '-';
                    keepNewline = s[p] == '+';
                    return p + 3;
                }
                if (At(p, closer) && At(p + 1, '}'))
                {
                    AddEnd(tokens, p);
                    stripAfter = false;
                    keepNewline = false;
                    return p + 2;
                }
            }

            var (line, column) = Place(p);
            char c = s[p];
            if (char.IsAsciiLetter(c) || c == '_')
            {
                int q = p;
                while (q < s.Length && (char.IsAsciiLetterOrDigit(s[q]) || s[q] == '_')) q++;
                tokens.Add(new TemplateToken(TokenKind.Name, s[p..q], null, line, column));
                p = q;
            }
            else if (char.IsAsciiDigit(c))
            {
                int q = p;
                while (q < s.Length && (char.IsAsciiDigit(s[q]) || s[q] == '_')) q++;
                bool isFloat = q + 1 < s.Length && s[q] == '.' && char.IsAsciiDigit(s[q + 1]);
                if (isFloat)
                {
                    q++;
                    while (q < s.Length && (char.IsAsciiDigit(s[q]) || s[q] == '_')) q++;
                }
                // An exponent makes a float too: 1e3, 2.5E-4.
                int exponent = q < s.Length && s[q] is 'e' or 'E' ? q + 1 : -1;
                if (exponent > 0 && exponent < s.Length && s[exponent] is '+' or '-') exponent++;
                if (exponent > 0 && exponent < s.Length && char.IsAsciiDigit(s[exponent]))
                {
                    isFloat = true;
                    q = exponent;
                    while (q < s.Length && (char.IsAsciiDigit(s[q]) || s[q] == '_')) q++;
                }
                string text = s[p..q].Replace("_", "");
                if (isFloat)
                    tokens.Add(new TemplateToken(TokenKind.Float, s[p..q], double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture), line, column));
                else if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long value))
                    tokens.Add(new TemplateToken(TokenKind.Integer, s[p..q], value, line, column));
                else
                    throw Error(p, $"the integer {text} is too large");
                p = q;
            }
            else if (c == '\'' || c == '"')
            {
                p = ReadString(p, tokens, line, column);
            }
            else
            {
                string? op = Operators.FirstOrDefault(o => string.CompareOrdinal(s, p, o, 0, o.Length) == 0);
                if (op is null)
                    throw Error(p, $"unexpected character '{c}' inside a tag");
                if (op == "{" || op == "[" || op == "(") depth++;
                else if ((op == "}" || op == "]" || op == ")") && depth > 0) depth--;
                tokens.Add(new TemplateToken(TokenKind.Operator, op, null, line, column));
                p += op.Length;
            }
        }
    }

    private bool At(int p, char c) => p < _source.Length && _source[p] == c;

    private void AddEnd(List<TemplateToken> tokens, int p)
    {
        var (line, column) = Place(p);
        tokens.Add(new TemplateToken(TokenKind.End, "", null, line, column));
    }

    /// <summary>A quoted string with Python's backslash escapes (jinja2 decodes string literals the same way).</summary>
    private int ReadString(int p, List<TemplateToken> tokens, int line, int column)
    {
        string s = _source;
        char quote = s[p];
        var value = new StringBuilder();
        int q = p + 1;
        while (true)
        {
            if (q >= s.Length) throw Error(p, $"the string opened here is never closed with {quote}");
            char c = s[q];
            if (c == quote) break;
            if (c != '\\') { value.Append(c); q++; continue; }
            if (q + 1 >= s.Length) throw Error(p, $"the string opened here is never closed with {quote}");
            char e = s[q + 1];
            q += 2;
            switch (e)
            {
                case 'n': value.Append('\n'); break;
                case 't': value.Append('\t'); break;
                case 'r': value.Append('\r'); break;
                case '0': value.Append('\0'); break;
                case 'a': value.Append('\a'); break;
                case 'b': value.Append('\b'); break;
                case 'f': value.Append('\f'); break;
                case 'v': value.Append('\v'); break;
                case '\\': value.Append('\\'); break;
                case '\'': value.Append('\''); break;
                case '"': value.Append('"'); break;
                case '\n': break;
                case 'x': value.Append(HexEscape(ref q, 2, p)); break;
                case 'u': value.Append(HexEscape(ref q, 4, p)); break;
                case 'U': value.Append(HexEscape(ref q, 8, p)); break;
                default: value.Append('\\').Append(e); break; // Python keeps unknown escapes as written
            }
        }
        tokens.Add(new TemplateToken(TokenKind.String, s[p..(q + 1)], value.ToString(), line, column));
        return q + 1;
    }

    private string HexEscape(ref int q, int digits, int stringStart)
    {
        if (q + digits > _source.Length
            || !int.TryParse(_source.AsSpan(q, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int code)
            || code > 0x10FFFF)
            throw Error(stringStart, $"the string has a malformed \\x/\\u escape (expected {digits} hex digits)");
        q += digits;
        // Python strings may hold a lone surrogate ('\ud800'); so may .NET's, but ConvertFromUtf32 refuses one.
        return code <= 0xFFFF ? ((char)code).ToString() : char.ConvertFromUtf32(code);
    }
}
