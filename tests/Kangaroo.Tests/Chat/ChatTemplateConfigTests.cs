using Xunit;
using Kangaroo.Chat;

namespace Kangaroo.Tests.Chat;

public sealed class ChatTemplateConfigTests
{
    private static readonly ChatMessage[] Hello = [new("user", "hi")];

    private static string Write(TestDirectory dir, string json)
    {
        File.WriteAllText(dir.Combine("tokenizer_config.json"), json);
        return dir.Path;
    }

    [Fact]
    public void Reads_a_string_template()
    {
        using var dir = new TestDirectory("chat");
        ChatTemplate template = ChatTemplateConfig.Load(Write(dir, """{"chat_template": "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"}"""));
        Assert.Equal("<user>hi", template.Render(Hello, false));
    }

    [Fact]
    public void Takes_the_default_of_a_list_of_named_templates()
    {
        using var dir = new TestDirectory("chat");
        ChatTemplate template = ChatTemplateConfig.Load(Write(dir,
            """{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ add_generation_prompt }}"}]}"""));
        Assert.Equal("DTrue", template.Render(Hello, true));
    }

    [Theory]
    [InlineData("""{"bos_token": "<s>"}""", "has no \"chat_template\" field")]
    [InlineData("""{"chat_template": null}""", "has no \"chat_template\" field")]
    [InlineData("""{"chat_template": 3}""", "must be a string or a list")]
    [InlineData("""{"chat_template": [{"name": "tool_use", "template": "T"}]}""", "no template named \"default\" (found: tool_use)")]
    [InlineData("""{"chat_template": [{"name": "default"}]}""", "entries must be objects")]
    [InlineData("""{"chat_template": "{% if x %}"}""", "line 1, column 1")]
    [InlineData("""{"chat_template": """, "tokenizer_config.json")]
    public void A_missing_or_malformed_template_names_the_file_and_field(string json, string fragment)
    {
        using var dir = new TestDirectory("chat");
        var e = Assert.Throws<ModelFormatException>(() => ChatTemplateConfig.Load(Write(dir, json)));
        Assert.EndsWith("tokenizer_config.json", e.Path);
        Assert.Contains(fragment, e.Message);
    }

    [Fact]
    public void A_directory_without_tokenizer_config_is_reported()
    {
        using var dir = new TestDirectory("chat");
        var e = Assert.Throws<ModelFormatException>(() => ChatTemplateConfig.Load(dir.Path));
        Assert.Contains("not found", e.Message);
    }
}
