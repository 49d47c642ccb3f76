using System.Text.Json;
using Kangaroo.Chat;

namespace Kangaroo.Tests.Chat;

/// <summary>
/// The real chat templates under Fixtures/chat_templates and the prompts jinja2 renders from them in transformers'
/// configuration (expected.json, written by tools/chat_templates/render_fixtures.py).
/// </summary>
public static class ChatTemplateFixtures
{
    public static string Directory => Path.Combine(AppContext.BaseDirectory, "Fixtures", "chat_templates");

    public sealed record Case(
        string Template, string Conversation, bool AddGenerationPrompt, string? BosToken, string? EosToken,
        IReadOnlyList<ChatMessage> Messages, IReadOnlyDictionary<string, object?> Extra, string? Output, string? Error)
    {
        public string Id => $"{Template}/{Conversation}/{(AddGenerationPrompt ? "prompt" : "no-prompt")}";
        public override string ToString() => Id;
    }

    public static IReadOnlyList<Case> Cases { get; } = Load();

    public static string TemplateSource(string name) => File.ReadAllText(Path.Combine(Directory, name + ".jinja"));

    private static List<Case> Load()
    {
        using JsonDocument document = JsonDocument.Parse(File.ReadAllText(Path.Combine(Directory, "expected.json")));
        var cases = new List<Case>();
        foreach (JsonElement c in document.RootElement.GetProperty("cases").EnumerateArray())
        {
            var messages = c.GetProperty("messages").EnumerateArray()
                .Select(m => new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)).ToList();
            var extra = c.GetProperty("extra").EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone());
            cases.Add(new Case(
                c.GetProperty("template").GetString()!,
                c.GetProperty("conversation").GetString()!,
                c.GetProperty("add_generation_prompt").GetBoolean(),
                c.GetProperty("bos_token").GetString(),
                c.GetProperty("eos_token").GetString(),
                messages, extra,
                c.TryGetProperty("output", out JsonElement output) ? output.GetString() : null,
                c.TryGetProperty("error", out JsonElement error) ? error.GetString() : null));
        }
        return cases;
    }
}
