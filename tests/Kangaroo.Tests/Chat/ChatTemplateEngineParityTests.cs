using System.Text.Json;
using Kangaroo.Chat;
using Xunit;

namespace Kangaroo.Tests.Chat;

/// <summary>
/// Small templates, one engine feature each, rendered exactly as jinja2 renders them (engine.json, written by
/// tools/chat_templates/render_fixtures.py); where jinja2 raises, the engine raises a ChatTemplateException too.
/// </summary>
public sealed class ChatTemplateEngineParityTests
{
    private sealed record Case(string Template, IReadOnlyDictionary<string, object?> Variables, string? Output, string? Error);

    private static readonly IReadOnlyList<Case> Cases = Load();

    private static List<Case> Load()
    {
        using JsonDocument document = JsonDocument.Parse(File.ReadAllText(Path.Combine(ChatTemplateFixtures.Directory, "engine.json")));
        return document.RootElement.GetProperty("cases").EnumerateArray().Select(c => new Case(
            c.GetProperty("template").GetString()!,
            c.GetProperty("variables").EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone()),
            c.TryGetProperty("output", out JsonElement o) ? o.GetString() : null,
            c.TryGetProperty("error", out JsonElement e) ? e.GetString() : null)).ToList();
    }

    public static TheoryData<int> Indices() => new(Enumerable.Range(0, Cases.Count));

    [Theory]
    [MemberData(nameof(Indices))]
    public void Renders_as_jinja2(int index)
    {
        Case c = Cases[index];
        string Render() => ChatTemplate.Parse(c.Template).Render(c.Variables);
        if (c.Error is null)
        {
            Assert.Equal(c.Output, Render());
            return;
        }
        var e = Assert.Throws<ChatTemplateException>(Render);
        // jinja2's UndefinedError text ("'x' is undefined") is what the engine's message says too.
        if (c.Error.StartsWith("UndefinedError: ", StringComparison.Ordinal))
            Assert.Contains(c.Error["UndefinedError: ".Length..], e.Message);
    }
}
