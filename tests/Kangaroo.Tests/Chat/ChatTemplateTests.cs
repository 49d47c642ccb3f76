using Xunit;
using Kangaroo.Chat;

namespace Kangaroo.Tests.Chat;

/// <summary>Real chat templates render byte for byte as jinja2 renders them in transformers' configuration.</summary>
public sealed class ChatTemplateFixtureTests
{
    public static TheoryData<string> CaseIds() => new(ChatTemplateFixtures.Cases.Select(c => c.Id));

    [Theory]
    [MemberData(nameof(CaseIds))]
    public void Fixture_renders_exactly_as_jinja2(string id)
    {
        ChatTemplateFixtures.Case c = ChatTemplateFixtures.Cases.Single(x => x.Id == id);
        ChatTemplate template = ChatTemplate.Parse(ChatTemplateFixtures.TemplateSource(c.Template));
        string Render() => template.Render(c.Messages, c.AddGenerationPrompt, c.Extra, c.BosToken, c.EosToken);
        if (c.Error is not null)
        {
            var e = Assert.Throws<ChatTemplateException>(Render);
            Assert.True(e.RaisedByTemplate);
            Assert.Equal(c.Error, e.Message);
        }
        else
        {
            Assert.Equal(c.Output, Render());
        }
    }

    [Fact]
    public void Every_template_has_cases_and_some_raise()
    {
        var names = ChatTemplateFixtures.Cases.Select(c => c.Template).Distinct().ToList();
        Assert.Equal(["llama-2-chat", "mistral-7b-instruct-v0.2", "mistral-v3-tools", "llama-3-instruct", "llama-3.1-instruct", "qwen2.5-instruct", "vicuna-v1.5"], names);
        Assert.Contains(ChatTemplateFixtures.Cases, c => c.Template == "llama-2-chat" && c.Error is not null);
        Assert.Contains(ChatTemplateFixtures.Cases, c => c.Template == "mistral-7b-instruct-v0.2" && c.Error is not null);
    }

    /// <summary>
    /// The comparison is exact: the same template with one character of its output changed (a renderer that got
    /// whitespace control wrong would differ in the same way) does not pass.
    /// </summary>
    [Fact]
    public void A_renderer_off_by_one_newline_fails_the_comparison()
    {
        ChatTemplateFixtures.Case c = ChatTemplateFixtures.Cases.First(x => x.Template == "vicuna-v1.5" && x.Output is not null);
        // Turning lstrip_blocks off by hand: the '+' keeps the indentation before every block tag.
        string broken = ChatTemplateFixtures.TemplateSource(c.Template).Replace("{% ", "{%+ ");
        string output = ChatTemplate.Parse(broken).Render(c.Messages, c.AddGenerationPrompt, c.Extra, c.BosToken, c.EosToken);
        Assert.NotEqual(c.Output, output);
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => Assert.Equal(c.Output, output));
    }
}
