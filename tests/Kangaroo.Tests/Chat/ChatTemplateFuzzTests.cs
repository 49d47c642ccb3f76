using Kangaroo.Chat;
using Xunit;

namespace Kangaroo.Tests.Chat;

/// <summary>
/// Templates stitched together at random from the pieces real templates are made of: parsing and rendering either
/// succeed or throw a <see cref="ChatTemplateException"/>, never another exception, a hang or a stack overflow.
/// </summary>
public sealed class ChatTemplateFuzzTests
{
    private static readonly string[] Pieces =
    [
        "{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", "{{-", "-}}", " ", "\n", "if", "elif", "else", "endif", "for", "in",
        "endfor", "set", "endset", "ns", "=", ".", "namespace(", "x", "messages", "message", "[", "]", "(", ")", "{", "}", ":",
        ",", "'a'", "\"b\"", "'\\u12'", "'\\ud800'", "1", "-1", "0", "2.5", "1e400", "+", "-", "*", "/", "//", "%", "**", "~", "==", "!=",
        "<", ">", "and", "or", "not", "is", "defined", "none", "string", "|", "trim", "length", "tojson", "join", "default", "first",
        "last", "list", "items", "strip", "split", "startswith", "replace", "loop", "index", "last", "raise_exception", "range",
        "break", "continue", "true", "false", "9999999999", "'%s'", "select", "equalto", "abs", "int", "get", "title",
    ];

    [Fact]
    public void Random_templates_fail_only_with_chat_template_errors()
    {
        var random = new Random(19);
        var variables = new Dictionary<string, object?>
        {
            ["messages"] = new[] { new ChatMessage("user", "hi"), new ChatMessage("assistant", " there ") },
            ["x"] = new Dictionary<string, object?> { ["a"] = new List<object?> { 1, "s", null } },
        };
        int rendered = 0;
        for (int i = 0; i < 20000; i++)
        {
            int count = random.Next(1, 24);
            string source = string.Concat(Enumerable.Range(0, count).Select(_ => Pieces[random.Next(Pieces.Length)] + (random.Next(3) == 0 ? " " : "")));
            try
            {
                ChatTemplate.Parse(source).Render(variables);
                rendered++;
            }
            catch (ChatTemplateException)
            {
            }
            catch (Exception e)
            {
                Assert.Fail($"{source}\n  threw {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
        }
        Assert.True(rendered > 100, $"only {rendered} of the random templates rendered");
    }
}
