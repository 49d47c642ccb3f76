namespace Kangaroo.Chat;

/// <summary>
/// Builds the statement tree of a template from the lexer's segments, with jinja2's operator precedence:
/// <c>a if c else b</c> &lt; or &lt; and &lt; not &lt; comparisons and <c>in</c> &lt; + - &lt; ~ &lt; * / // % &lt; ** &lt;
/// unary - &lt; filters, tests, calls, attribute and item access. Every error names the line and column and what was
/// expected there.
/// </summary>
internal sealed class TemplateParser
{
    /// <summary>Deeper nesting than any real template, and well inside the stack: "((((((..." is an error, not a crash.</summary>
    private const int MaxDepth = 200;

    private readonly List<TemplateSegment> _segments;
    private int _segment;
    private IReadOnlyList<TemplateToken> _tokens = [];
    private int _token;
    private int _depth;
    private int _loopDepth;

    private TemplateParser(List<TemplateSegment> segments) => _segments = segments;

    public static IReadOnlyList<StatementNode> Parse(string source)
    {
        var parser = new TemplateParser(TemplateLexer.Tokenize(source));
        var body = parser.ParseBody([], null, out _);
        return body;
    }

    private static ChatTemplateException Error(int line, int column, string message) =>
        new($"chat template syntax error at line {line}, column {column}: {message}", line, column);

    private ChatTemplateException Error(TemplateToken at, string message) => Error(at.Line, at.Column, message);

    /// <summary>
    /// Statements up to one of <paramref name="terminators"/> (a tag such as <c>endif</c> or <c>elif</c>), whose name is
    /// returned with the cursor on its tokens; at the top level the body runs to the end of the template.
    /// </summary>
    private List<StatementNode> ParseBody(string[] terminators, TemplateSegment? opener, out string terminator)
    {
        var body = new List<StatementNode>();
        while (_segment < _segments.Count)
        {
            TemplateSegment segment = _segments[_segment++];
            switch (segment.Kind)
            {
                case SegmentKind.Text:
                    body.Add(new TextNode(segment.Text, segment.Line, segment.Column));
                    break;
                case SegmentKind.Output:
                {
                    Begin(segment);
                    if (Peek.Kind == TokenKind.End) throw Error(Peek, "expected an expression inside '{{ }}'");
                    ExpressionNode expression = ParseExpression();
                    ExpectEnd();
                    body.Add(new OutputNode(expression));
                    break;
                }
                case SegmentKind.Statement:
                {
                    Begin(segment);
                    TemplateToken keyword = Next();
                    if (keyword.Kind != TokenKind.Name) throw Error(keyword, $"expected a statement name after '{{%', found {keyword.Describe()}");
                    if (terminators.Contains(keyword.Text))
                    {
                        terminator = keyword.Text;
                        return body;
                    }
                    body.Add(ParseStatement(keyword, segment));
                    break;
                }
            }
        }
        if (opener is not null)
            throw Error(opener.Line, opener.Column,
                $"the '{opener.Tokens[0].Text}' tag opened here is never closed: expected {string.Join(" or ", terminators.Select(t => $"'{{% {t} %}}'"))} before the end of the template");
        terminator = "";
        return body;
    }

    private StatementNode ParseStatement(TemplateToken keyword, TemplateSegment segment)
    {
        switch (keyword.Text)
        {
            case "if": return ParseIf(keyword, segment);
            case "for": return ParseFor(keyword, segment);
            case "set": return ParseSet(keyword, segment);
            case "break" or "continue":
                if (_loopDepth == 0) throw Error(keyword, $"'{keyword.Text}' outside a for loop");
                ExpectEnd();
                return new LoopControlNode(keyword.Text == "break" ? LoopSignal.Break : LoopSignal.Continue, keyword.Line, keyword.Column);
            case "generation":
            {
                // transformers' AssistantTracker extension: the body marks the assistant's tokens for
                // return_assistant_tokens_mask and renders unchanged, which is all a prompt needs.
                ExpectEnd();
                List<StatementNode> body = ParseBody(["endgeneration"], segment, out _);
                ExpectEnd();
                return new IfNode([(new LiteralNode(true, keyword.Line, keyword.Column), body)], null, keyword.Line, keyword.Column);
            }
            case "elif" or "else" or "endif" or "endfor" or "endset" or "endgeneration":
                throw Error(keyword, $"unexpected '{keyword.Text}': no open block takes it here");
            case "macro" or "call" or "filter" or "raw" or "block" or "extends" or "include" or "import" or "from" or "with" or "autoescape":
                throw Error(keyword, $"the '{keyword.Text}' tag is not supported by this chat template engine");
            default:
                throw Error(keyword, $"unknown tag '{keyword.Text}'");
        }
    }

    private IfNode ParseIf(TemplateToken keyword, TemplateSegment segment)
    {
        var branches = new List<(ExpressionNode, IReadOnlyList<StatementNode>)>();
        List<StatementNode>? otherwise = null;
        ExpressionNode condition = ParseExpression();
        ExpectEnd();
        while (true)
        {
            List<StatementNode> body = ParseBody(["elif", "else", "endif"], segment, out string terminator);
            branches.Add((condition, body));
            if (terminator == "elif")
            {
                condition = ParseExpression();
                ExpectEnd();
                continue;
            }
            if (terminator == "else")
            {
                ExpectEnd();
                otherwise = ParseBody(["endif"], segment, out _);
            }
            ExpectEnd();
            return new IfNode(branches, otherwise, keyword.Line, keyword.Column);
        }
    }

    private ForNode ParseFor(TemplateToken keyword, TemplateSegment segment)
    {
        var targets = new List<string> { ExpectName("a loop variable name") };
        while (Peek.Is(","))
        {
            Next();
            targets.Add(ExpectName("a loop variable name"));
        }
        if (!Peek.Is("in")) throw Error(Peek, $"expected 'in' after the loop variables, found {Peek.Describe()}");
        Next();
        ExpressionNode iterable = ParseTernaryFree();
        ExpressionNode? filter = null;
        if (Peek.Is("if"))
        {
            Next();
            filter = ParseTernaryFree();
        }
        if (Peek.Is("recursive")) throw Error(Peek, "recursive loops are not supported by this chat template engine");
        ExpectEnd();
        _loopDepth++;
        List<StatementNode> body = ParseBody(["else", "endfor"], segment, out string terminator);
        _loopDepth--;
        List<StatementNode>? otherwise = null;
        if (terminator == "else")
        {
            ExpectEnd();
            otherwise = ParseBody(["endfor"], segment, out _);
        }
        ExpectEnd();
        return new ForNode(targets, iterable, filter, body, otherwise, keyword.Line, keyword.Column);
    }

    private StatementNode ParseSet(TemplateToken keyword, TemplateSegment segment)
    {
        var names = new List<string> { ExpectName("a variable name") };
        string? attribute = null;
        if (Peek.Is("."))
        {
            Next();
            attribute = ExpectName("an attribute name");
        }
        else
        {
            while (Peek.Is(","))
            {
                Next();
                names.Add(ExpectName("a variable name"));
            }
        }
        if (Peek.Kind == TokenKind.End && attribute is null && names.Count == 1)
        {
            ExpectEnd();
            List<StatementNode> body = ParseBody(["endset"], segment, out _);
            ExpectEnd();
            return new SetBlockNode(names[0], body, keyword.Line, keyword.Column);
        }
        if (!Peek.Is("=")) throw Error(Peek, $"expected '=' in the set statement, found {Peek.Describe()}");
        Next();
        ExpressionNode value = ParseTupleOrExpression();
        ExpectEnd();
        return new SetNode(names, attribute, value, keyword.Line, keyword.Column);
    }

    // ---- Token cursor ---------------------------------------------------------------------------------------------

    private void Begin(TemplateSegment segment)
    {
        _tokens = segment.Tokens;
        _token = 0;
    }

    private TemplateToken Peek => _tokens[_token];

    private TemplateToken PeekAt(int ahead) => _tokens[Math.Min(_token + ahead, _tokens.Count - 1)];

    private TemplateToken Next()
    {
        TemplateToken token = _tokens[_token];
        if (token.Kind != TokenKind.End) _token++;
        return token;
    }

    private void ExpectEnd()
    {
        if (Peek.Kind != TokenKind.End) throw Error(Peek, $"expected the end of the tag, found {Peek.Describe()}");
    }

    private void Expect(string op, string context)
    {
        if (!Peek.Is(op)) throw Error(Peek, $"expected '{op}' {context}, found {Peek.Describe()}");
        Next();
    }

    private string ExpectName(string what)
    {
        TemplateToken token = Next();
        if (token.Kind != TokenKind.Name) throw Error(token, $"expected {what}, found {token.Describe()}");
        return token.Text;
    }

    // ---- Expressions ----------------------------------------------------------------------------------------------

    /// <summary><c>{% set a = 1, 2 %}</c> makes a tuple, which behaves as a list here.</summary>
    private ExpressionNode ParseTupleOrExpression()
    {
        ExpressionNode first = ParseExpression();
        if (!Peek.Is(",")) return first;
        var items = new List<ExpressionNode> { first };
        while (Peek.Is(","))
        {
            Next();
            if (Peek.Kind == TokenKind.End) break;
            items.Add(ParseExpression());
        }
        return new ListNode(items, true, first.Line, first.Column);
    }

    private ExpressionNode ParseExpression()
    {
        if (++_depth > MaxDepth) throw Error(Peek, $"the expression is nested more than {MaxDepth} levels deep");
        try
        {
            ExpressionNode value = ParseOr();
            while (Peek.Is("if"))
            {
                TemplateToken at = Next();
                ExpressionNode condition = ParseOr();
                ExpressionNode? otherwise = null;
                if (Peek.Is("else"))
                {
                    Next();
                    otherwise = ParseOr();
                }
                value = new ConditionalNode(value, condition, otherwise, at.Line, at.Column);
            }
            return value;
        }
        finally
        {
            _depth--;
        }
    }

    /// <summary>An expression without a trailing <c>if</c>: a for loop's <c>if</c> filters instead.</summary>
    private ExpressionNode ParseTernaryFree()
    {
        if (++_depth > MaxDepth) throw Error(Peek, $"the expression is nested more than {MaxDepth} levels deep");
        try { return ParseOr(); }
        finally { _depth--; }
    }

    private ExpressionNode ParseOr()
    {
        ExpressionNode left = ParseAnd();
        while (Peek.Is("or"))
        {
            TemplateToken op = Next();
            left = new BinaryNode("or", left, ParseAnd(), op.Line, op.Column);
        }
        return left;
    }

    private ExpressionNode ParseAnd()
    {
        ExpressionNode left = ParseNot();
        while (Peek.Is("and"))
        {
            TemplateToken op = Next();
            left = new BinaryNode("and", left, ParseNot(), op.Line, op.Column);
        }
        return left;
    }

    private ExpressionNode ParseNot()
    {
        if (Peek.Is("not"))
        {
            TemplateToken op = Next();
            if (++_depth > MaxDepth) throw Error(op, $"the expression is nested more than {MaxDepth} levels deep");
            try { return new UnaryNode("not", ParseNot(), op.Line, op.Column); }
            finally { _depth--; }
        }
        return ParseCompare();
    }

    private ExpressionNode ParseCompare()
    {
        ExpressionNode first = ParseAdditive();
        var rest = new List<(string, ExpressionNode)>();
        while (true)
        {
            TemplateToken token = Peek;
            string? op = null;
            if (token.Kind == TokenKind.Operator && token.Text is "==" or "!=" or "<" or ">" or "<=" or ">=") op = token.Text;
            else if (token.Is("in")) op = "in";
            else if (token.Is("not") && PeekAt(1).Is("in")) op = "not in";
            if (op is null) break;
            Next();
            if (op == "not in") Next();
            rest.Add((op, ParseAdditive()));
        }
        return rest.Count == 0 ? first : new CompareNode(first, rest, first.Line, first.Column);
    }

    private ExpressionNode ParseAdditive()
    {
        ExpressionNode left = ParseConcat();
        while (Peek.Kind == TokenKind.Operator && Peek.Text is "+" or "-")
        {
            TemplateToken op = Next();
            left = new BinaryNode(op.Text, left, ParseConcat(), op.Line, op.Column);
        }
        return left;
    }

    private ExpressionNode ParseConcat()
    {
        ExpressionNode left = ParseMultiplicative();
        while (Peek.Is("~"))
        {
            TemplateToken op = Next();
            left = new BinaryNode("~", left, ParseMultiplicative(), op.Line, op.Column);
        }
        return left;
    }

    private ExpressionNode ParseMultiplicative()
    {
        ExpressionNode left = ParsePower();
        while (Peek.Kind == TokenKind.Operator && Peek.Text is "*" or "/" or "//" or "%")
        {
            TemplateToken op = Next();
            left = new BinaryNode(op.Text, left, ParsePower(), op.Line, op.Column);
        }
        return left;
    }

    private ExpressionNode ParsePower()
    {
        ExpressionNode left = ParseUnary();
        while (Peek.Is("**"))
        {
            TemplateToken op = Next();
            left = new BinaryNode("**", left, ParseUnary(), op.Line, op.Column);
        }
        return left;
    }

    private ExpressionNode ParseUnary()
    {
        if (Peek.Kind == TokenKind.Operator && Peek.Text is "-" or "+")
        {
            TemplateToken op = Next();
            if (++_depth > MaxDepth) throw Error(op, $"the expression is nested more than {MaxDepth} levels deep");
            try { return ParsePostfix(new UnaryNode(op.Text, ParseUnary(), op.Line, op.Column)); }
            finally { _depth--; }
        }
        return ParsePostfix(ParsePrimary());
    }

    /// <summary>Attribute and item access, slices, calls, <c>| filter</c> and <c>is test</c>, left to right.</summary>
    private ExpressionNode ParsePostfix(ExpressionNode node)
    {
        while (true)
        {
            TemplateToken token = Peek;
            if (token.Is("."))
            {
                Next();
                TemplateToken name = Next();
                if (name.Kind == TokenKind.Name)
                    node = new GetNode(node, new LiteralNode(name.Text, name.Line, name.Column), true, token.Line, token.Column);
                else if (name.Kind == TokenKind.Integer)
                    node = new GetNode(node, new LiteralNode(name.Value, name.Line, name.Column), false, token.Line, token.Column);
                else
                    throw Error(name, $"expected an attribute name after '.', found {name.Describe()}");
            }
            else if (token.Is("["))
            {
                Next();
                node = ParseSubscript(node, token);
            }
            else if (token.Is("("))
            {
                Next();
                var (args, kwargs) = ParseArguments();
                node = new CallNode(node, args, kwargs, token.Line, token.Column);
            }
            else if (token.Is("|"))
            {
                Next();
                TemplateToken name = Next();
                if (name.Kind != TokenKind.Name) throw Error(name, $"expected a filter name after '|', found {name.Describe()}");
                IReadOnlyList<ExpressionNode> args = [];
                IReadOnlyList<(string, ExpressionNode)> kwargs = [];
                if (Peek.Is("("))
                {
                    Next();
                    (args, kwargs) = ParseArguments();
                }
                node = new FilterNode(node, name.Text, args, kwargs, name.Line, name.Column);
            }
            else if (token.Is("is"))
            {
                Next();
                bool negated = false;
                if (Peek.Is("not"))
                {
                    Next();
                    negated = true;
                }
                TemplateToken name = Next();
                if (name.Kind != TokenKind.Name) throw Error(name, $"expected a test name after 'is', found {name.Describe()}");
                var args = new List<ExpressionNode>();
                if (Peek.Is("("))
                {
                    Next();
                    var (positional, named) = ParseArguments();
                    if (named.Count > 0) throw Error(name, "tests take no keyword arguments here");
                    args.AddRange(positional);
                }
                else if (Peek.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float
                         || (Peek.Kind == TokenKind.Name && !IsKeyword(Peek.Text)))
                {
                    // jinja2 takes one bare argument: "x is divisibleby 3", "x is equalto 'a'".
                    args.Add(ParsePrimary());
                }
                node = new TestNode(node, name.Text, args, negated, name.Line, name.Column);
            }
            else
            {
                return node;
            }
        }
    }

    private static bool IsKeyword(string name) => name is "and" or "or" or "not" or "in" or "is" or "if" or "else";

    private ExpressionNode ParseSubscript(ExpressionNode target, TemplateToken open)
    {
        ExpressionNode? start = null, stop = null, step = null;
        if (!Peek.Is(":")) start = ParseExpression();
        if (Peek.Is("]"))
        {
            Next();
            if (start is null) throw Error(open, "expected an index inside '[ ]'");
            return new GetNode(target, start, false, open.Line, open.Column);
        }
        Expect(":", "or ']' in the subscript");
        if (!Peek.Is(":") && !Peek.Is("]")) stop = ParseExpression();
        if (Peek.Is(":"))
        {
            Next();
            if (!Peek.Is("]")) step = ParseExpression();
        }
        Expect("]", "to close the slice");
        return new SliceNode(target, start, stop, step, open.Line, open.Column);
    }

    private (List<ExpressionNode>, List<(string, ExpressionNode)>) ParseArguments()
    {
        var args = new List<ExpressionNode>();
        var kwargs = new List<(string, ExpressionNode)>();
        while (!Peek.Is(")"))
        {
            if (Peek.Kind == TokenKind.Name && PeekAt(1).Is("="))
            {
                string name = Next().Text;
                Next();
                kwargs.Add((name, ParseExpression()));
            }
            else
            {
                if (kwargs.Count > 0) throw Error(Peek, "a positional argument cannot follow keyword arguments");
                args.Add(ParseExpression());
            }
            if (Peek.Is(",")) Next();
            else if (!Peek.Is(")")) throw Error(Peek, $"expected ',' or ')' in the argument list, found {Peek.Describe()}");
        }
        Next();
        return (args, kwargs);
    }

    private ExpressionNode ParsePrimary()
    {
        TemplateToken token = Next();
        switch (token.Kind)
        {
            case TokenKind.String:
            {
                // Adjacent string literals join, as in Python: {{ 'a' 'b' }}.
                string text = (string)token.Value!;
                while (Peek.Kind == TokenKind.String) text += (string)Next().Value!;
                return new LiteralNode(text, token.Line, token.Column);
            }
            case TokenKind.Integer or TokenKind.Float:
                return new LiteralNode(token.Value, token.Line, token.Column);
            case TokenKind.Name:
                return token.Text switch
                {
                    "true" or "True" => new LiteralNode(true, token.Line, token.Column),
                    "false" or "False" => new LiteralNode(false, token.Line, token.Column),
                    "none" or "None" => new LiteralNode(null, token.Line, token.Column),
                    _ when IsKeyword(token.Text) => throw Error(token, $"expected a value, found the keyword '{token.Text}'"),
                    _ => new NameNode(token.Text, token.Line, token.Column),
                };
            case TokenKind.Operator when token.Text == "(":
            {
                if (Peek.Is(")"))
                {
                    Next();
                    return new ListNode([], true, token.Line, token.Column);
                }
                ExpressionNode inner = ParseExpression();
                if (Peek.Is(","))
                {
                    var items = new List<ExpressionNode> { inner };
                    while (Peek.Is(","))
                    {
                        Next();
                        if (Peek.Is(")")) break;
                        items.Add(ParseExpression());
                    }
                    inner = new ListNode(items, true, token.Line, token.Column);
                }
                Expect(")", "to close the parenthesis");
                return inner;
            }
            case TokenKind.Operator when token.Text == "[":
            {
                var items = new List<ExpressionNode>();
                while (!Peek.Is("]"))
                {
                    items.Add(ParseExpression());
                    if (Peek.Is(",")) Next();
                    else if (!Peek.Is("]")) throw Error(Peek, $"expected ',' or ']' in the list, found {Peek.Describe()}");
                }
                Next();
                return new ListNode(items, false, token.Line, token.Column);
            }
            case TokenKind.Operator when token.Text == "{":
            {
                var pairs = new List<(ExpressionNode, ExpressionNode)>();
                while (!Peek.Is("}"))
                {
                    ExpressionNode key = ParseExpression();
                    Expect(":", "between a dict key and its value");
                    pairs.Add((key, ParseExpression()));
                    if (Peek.Is(",")) Next();
                    else if (!Peek.Is("}")) throw Error(Peek, $"expected ',' or '}}' in the dict, found {Peek.Describe()}");
                }
                Next();
                return new DictNode(pairs, token.Line, token.Column);
            }
            default:
                throw Error(token, $"expected a value, found {token.Describe()}");
        }
    }
}
