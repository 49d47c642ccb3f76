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
        ModelChatTemplate template = ChatTemplateConfig.Load(Write(dir, """{"chat_template": "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"}"""));
        Assert.Equal("<user>hi", template.Render(Hello, false));
        Assert.Null(template.BosToken);
    }

    [Fact]
    public void Takes_the_default_of_a_list_of_named_templates()
    {
        using var dir = new TestDirectory("chat");
        ModelChatTemplate template = ChatTemplateConfig.Load(Write(dir,
            """{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ add_generation_prompt }}"}]}"""));
        Assert.Equal("DTrue", template.Render(Hello, true));
    }

    [Fact]
    public void Renders_with_the_files_bos_and_eos_tokens()
    {
        using var dir = new TestDirectory("chat");
        ModelChatTemplate template = ChatTemplateConfig.Load(Write(dir, """
            {"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>",
             "chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}"}
            """));
        Assert.Equal(("<s>", "</s>"), (template.BosToken, template.EosToken));
        Assert.Equal("<s>hi</s>", template.Render(Hello, false));
    }

    [Fact]
    public void A_real_llama_2_config_renders_as_the_fixture()
    {
        using var dir = new TestDirectory("chat");
        string source = ChatTemplateFixtures.TemplateSource("llama-2-chat");
        File.WriteAllText(dir.Combine("tokenizer_config.json"), System.Text.Json.JsonSerializer.Serialize(
            new Dictionary<string, object> { ["bos_token"] = "<s>", ["eos_token"] = "</s>", ["chat_template"] = source }));
        ChatTemplateFixtures.Case c = ChatTemplateFixtures.Cases.First(x => x.Template == "llama-2-chat" && x.Output is not null);
        Assert.Equal(c.Output, ChatTemplateConfig.Load(dir.Path).Render(c.Messages, c.AddGenerationPrompt));
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
