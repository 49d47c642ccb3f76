using Xunit;
using Kangaroo.Chat;

namespace Kangaroo.Tests.Chat;

/// <summary>The Jinja2 features chat templates use, each checked against what jinja2 3.1 renders.</summary>
public sealed class ChatTemplateEngineTests
{
    private static string Render(string source, IReadOnlyDictionary<string, object?>? variables = null) =>
        ChatTemplate.Parse(source).Render(variables ?? new Dictionary<string, object?>());

    private static Dictionary<string, object?> Vars(params (string Name, object? Value)[] pairs) =>
        pairs.ToDictionary(p => p.Name, p => p.Value);

    [Theory]
    // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it.
    [InlineData("{% if true %}\nyes\n{% endif %}\nafter", "yes\nafter")]
    [InlineData("  {% if true %}\n    x\n  {% endif %}\n", "    x\n")]
    [InlineData("a  {%- if true %} b {% endif -%}  c", "a b c")]
    [InlineData("a\n  {{- 'b' -}}\n  c", "abc")]
    [InlineData("  {{ 'v' }}\nw", "  v\nw")] // variable tags are not lstripped, and no newline is trimmed after them
    [InlineData("x\n", "x")] // jinja2 drops one newline at the end of the template (keep_trailing_newline=False)
    [InlineData("a\r\nb\rc", "a\nb\nc")] // and reads every line break as \n
    [InlineData("  {%+ if true %}x{% endif %}", "  x")]
    [InlineData("{% if true +%}\nx{% endif %}", "\nx")]
    [InlineData("a {# a comment #}\nb", "a b")]
    [InlineData("a\n  {#- comment -#}\n  b", "ab")]
    [InlineData("{% for x in [1, 2] %}\n  {{ x }}\n{% endfor %}", "  1\n  2\n")]
    public void Whitespace_control_matches_jinja2_with_trim_and_lstrip_blocks(string source, string expected) =>
        Assert.Equal(expected, Render(source));

    [Fact]
    public void Loop_variables_and_unpacking()
    {
        Assert.Equal("1/0/True/False/3 2/1/False/False/3 3/2/False/True/3 ",
            Render("{% for x in xs %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }} {% endfor %}",
                Vars(("xs", new[] { "a", "b", "c" }))));
        Assert.Equal("a=1;b=2;", Render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
            Vars(("d", new Dictionary<string, object?> { ["a"] = 1, ["b"] = 2 }))));
        Assert.Equal("a=1;b=2;", Render("{% for k, v in d | items %}{{ k }}={{ v }};{% endfor %}",
            Vars(("d", new Dictionary<string, object?> { ["a"] = 1, ["b"] = 2 }))));
        Assert.Equal("empty", Render("{% for x in [] %}{{ x }}{% else %}empty{% endfor %}"));
        Assert.Equal("2,4,", Render("{% for x in [1, 2, 3, 4] if x % 2 == 0 %}{{ x }},{% endfor %}"));
        Assert.Equal("1,2,", Render("{% for x in [1, 2, 3, 4] %}{% if x > 2 %}{% break %}{% endif %}{{ x }},{% endfor %}"));
        Assert.Equal("1,3,", Render("{% for x in [1, 2, 3] %}{% if x == 2 %}{% continue %}{% endif %}{{ x }},{% endfor %}"));
    }

    [Fact]
    public void Set_in_a_loop_is_scoped_to_it_but_a_namespace_carries_state_out()
    {
        Assert.Equal("0", Render("{% set n = 0 %}{% for x in [1, 2] %}{% set n = n + x %}{% endfor %}{{ n }}"));
        Assert.Equal("3", Render("{% set ns = namespace(n=0) %}{% for x in [1, 2] %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}"));
        Assert.Equal("yes", Render("{% if true %}{% set a = 'yes' %}{% endif %}{{ a }}"));
        Assert.Equal("x-y", Render("{% set a, b = 'x', 'y' %}{{ a }}-{{ b }}"));
        Assert.Equal("[b]", Render("{% set s %}[{{ 'b' }}]{% endset %}{{ s }}"));
        var e = Assert.Throws<ChatTemplateException>(() => Render("{% set s = 'x' %}{% set s.a = 1 %}"));
        Assert.Contains("namespace", e.Message);
    }

    [Theory]
    [InlineData("{{ ' a b '|trim }}", "a b")]
    [InlineData("{{ [1, 2, 3]|length }}", "3")]
    [InlineData("{{ 'héllo'|length }}", "5")]
    [InlineData("{{ 'Ab'|upper }}{{ 'Ab'|lower }}", "ABab")]
    [InlineData("{{ missing|default('d') }}|{{ ''|default('d') }}|{{ ''|default('d', true) }}", "d||d")]
    [InlineData("{{ [1, 2]|first }}{{ [1, 2]|last }}{{ 'xyz'|first }}", "12x")]
    [InlineData("{{ ['a', 'b']|join(', ') }}|{{ [1, 2]|join }}", "a, b|12")]
    [InlineData("{{ 'ab'|list }}", "['a', 'b']")]
    [InlineData("{{ 42|string ~ 'x' }}", "42x")]
    [InlineData("{{ {'a': [1, 'é\"', none, true, 1.5]}|tojson }}", "{\"a\": [1, \"é\\\"\", null, true, 1.5]}")]
    [InlineData("{{ {'a': [1], 'b': {}}|tojson(indent=2) }}", "{\n  \"a\": [\n    1\n  ],\n  \"b\": {}\n}")]
    [InlineData("{{ [1, 2, 3]|reject('equalto', 2)|list }}", "[1, 3]")]
    public void Filters(string source, string expected) => Assert.Equal(expected, Render(source));

    [Theory]
    [InlineData("{{ ' x '.strip() }}|{{ ' x '.lstrip() }}|{{ ' x '.rstrip() }}|{{ 'xxaxx'.strip('x') }}", "x|x | x|a")]
    [InlineData("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}{{ 'abc'.startswith('b') }}", "TrueTrueFalse")]
    [InlineData("{{ 'a b  c'.split() }}{{ 'a,b'.split(',') }}", "['a', 'b', 'c']['a', 'b']")]
    [InlineData("{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}{{ 'aXa'.replace('a', 'b') }}", "ABabbXb")]
    [InlineData("{{ {'k': 1}.items()|list }}|{{ {'k': 1}.get('z', 'no') }}|{{ (1, 'a') }}{{ (1,) }}", "[('k', 1)]|no|(1, 'a')(1,)")]
    public void String_and_dict_methods(string source, string expected) => Assert.Equal(expected, Render(source));

    [Theory]
    [InlineData("{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 4 / 2 }} {{ 2 ** 3 }}", "7 3 -4 2 3.5 2.0 8")]
    [InlineData("{{ 'a' + 'b' ~ 1 }}", "ab1")]
    [InlineData("{{ 1 == 1.0 }}{{ 1 != 2 }}{{ 1 < 2 <= 2 }}{{ 'a' > 'b' }}", "TrueTrueTrueFalse")]
    [InlineData("{{ true and 'x' }}|{{ false or 'y' }}|{{ not none }}", "x|y|True")]
    [InlineData("{{ 'b' in 'abc' }}{{ 2 in [1, 2] }}{{ 'k' in {'k': 1} }}{{ 3 not in [1] }}", "TrueTrueTrueTrue")]
    [InlineData("{{ 'y' if 1 > 2 else 'n' }}|{{ 'y' if false }}|", "n||")]
    [InlineData("{{ [1, 2, 3][1:] }}{{ [1, 2, 3][-1] }}{{ 'abc'[::-1] }}{{ [1, 2, 3][:-1] }}", "[2, 3]3cba[1, 2]")]
    [InlineData("{{ m['role'] }}:{{ m.content }}", "user:hi")]
    [InlineData("{{ none }}|{{ [none, true, \"it's\", 'a' 'b'] }}", "None|[None, True, \"it's\", 'ab']")]
    [InlineData("{{ x is defined }}{{ x is not defined }}{{ none is none }}{{ 's' is string }}{{ 4 is divisibleby 2 }}", "FalseTrueTrueTrueTrue")]
    public void Expressions(string source, string expected) =>
        Assert.Equal(expected, Render(source, Vars(("m", new Dictionary<string, object?> { ["role"] = "user", ["content"] = "hi" }))));

    [Fact]
    public void Generation_blocks_render_their_body()
    {
        Assert.Equal("<a>hi</a>", Render("<a>{% generation %}{{ 'hi' }}{% endgeneration %}</a>"));
        Assert.Contains("never closed", Assert.Throws<ChatTemplateException>(() => Render("{% generation %}x")).Message);
    }

    [Fact]
    public void Json_numbers_stay_integers()
    {
        var tool = System.Text.Json.JsonDocument.Parse("""{"n": 3, "x": 1.5, "big": 1e20}""").RootElement.Clone();
        Assert.Equal("{\"n\": 3, \"x\": 1.5, \"big\": 1e+20}|3", Render("{{ t|tojson }}|{{ t.n }}", Vars(("t", tool))));
    }

    [Fact]
    public void Undefined_renders_empty_is_falsy_and_fails_only_where_jinja2_fails()
    {
        Assert.Equal("[]", Render("[{{ nothing }}]"));
        Assert.Equal("no", Render("{% if nothing %}yes{% else %}no{% endif %}"));
        Assert.Equal("0", Render("{{ nothing|length }}"));
        Assert.Equal("", Render("{% for x in nothing %}{{ x }}{% endfor %}"));
        Assert.Equal("x", Render("{{ nothing ~ 'x' }}"));
        // A missing key is undefined, as message.tool_calls is for a plain message.
        Assert.Equal("False", Render("{{ m.tool_calls is defined }}", Vars(("m", new Dictionary<string, object?>()))));
        // jinja2 raises on an attribute of an undefined value, and on arithmetic with it.
        Assert.Contains("'nothing' is undefined", Assert.Throws<ChatTemplateException>(() => Render("{{ nothing.attr }}")).Message);
        Assert.Contains("'nothing' is undefined", Assert.Throws<ChatTemplateException>(() => Render("{{ nothing + 'x' }}")).Message);
    }

    [Fact]
    public void Raise_exception_raises_with_the_templates_message()
    {
        var e = Assert.Throws<ChatTemplateException>(() => Render("{{ raise_exception('Only user and assistant roles are supported!') }}"));
        Assert.Equal("Only user and assistant roles are supported!", e.Message);
        Assert.True(e.RaisedByTemplate);
    }

    [Theory]
    [InlineData("{% if x %}never closed", 1, 1, "never closed")]
    [InlineData("ok\n{% for x in xs %}{{ x }}", 2, 1, "'{% endfor %}'")]
    [InlineData("{{ 'a' + }}", 1, 10, "expected a value, found the end of the tag")]
    [InlineData("line1\n  {{ x ) }}", 2, 8, "expected the end of the tag")]
    [InlineData("{% endif %}", 1, 4, "unexpected 'endif'")]
    [InlineData("{{ x", 1, 1, "never closed with '}}'")]
    [InlineData("{# comment", 1, 1, "never closed with '#}'")]
    [InlineData("{{ 'unterminated }}", 1, 4, "never closed")]
    [InlineData("{% macro m() %}{% endmacro %}", 1, 4, "'macro' tag is not supported")]
    [InlineData("{% frobnicate %}", 1, 4, "unknown tag 'frobnicate'")]
    [InlineData("{% for x xs %}{% endfor %}", 1, 10, "expected 'in' after the loop variables")]
    [InlineData("{% set x 1 %}", 1, 10, "expected '='")]
    [InlineData("{{ x @ y }}", 1, 6, "unexpected character '@'")]
    [InlineData("{% for x in y %}{% endfor %}{% break %}", 1, 32, "'break' outside a for loop")]
    [InlineData("{% if x %}a{% else %}b{% elif y %}c{% endif %}", 1, 26, "unexpected 'elif'")]
    public void Syntax_errors_name_the_line_column_and_what_was_expected(string source, int line, int column, string fragment)
    {
        var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(source));
        Assert.Equal((line, column), (e.Line, e.Column));
        Assert.Contains($"line {line}, column {column}", e.Message);
        Assert.Contains(fragment, e.Message);
    }

    [Fact]
    public void Deep_nesting_is_an_error_not_a_stack_overflow()
    {
        var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse("{{ " + new string('(', 5000) + "1" + new string(')', 5000) + " }}"));
        Assert.Contains("nested", e.Message);
    }

    [Fact]
    public void Unknown_filters_and_runaway_output_are_errors()
    {
        Assert.Contains("filter 'frob' is not supported", Assert.Throws<ChatTemplateException>(() => Render("{{ 'x'|frob }}")).Message);
        Assert.Contains("too large", Assert.Throws<ChatTemplateException>(() => Render("{{ 'x' * 1000000000 }}")).Message);
        Assert.Contains("loop iterations", Assert.Throws<ChatTemplateException>(() =>
            Render("{% for a in range(1000000) %}{% for b in range(1000000) %}{% endfor %}{% endfor %}")).Message);
        Assert.Contains("overflow", Assert.Throws<ChatTemplateException>(() => Render("{{ 3 ** 1000 }}")).Message);
        Assert.Equal("1 -1 1024", Render("{{ 1 ** 1000000000000 }} {{ (-1) ** 999999999999 }} {{ 2 ** 10 }}"));
        Assert.Contains("expects an integer", Assert.Throws<ChatTemplateException>(() => Render("{{ 'a,b'.split(',', 'x') }}")).Message);
    }
}
