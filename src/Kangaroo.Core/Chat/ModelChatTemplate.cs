namespace Kangaroo.Chat;

/// <summary>
/// A model's chat template together with the BOS/EOS token texts its tokenizer_config.json names, so that a prompt
/// renders as transformers' <c>tokenizer.apply_chat_template</c> renders it for that model.
/// </summary>
public sealed record ModelChatTemplate(ChatTemplate Template, string? BosToken, string? EosToken)
{
    /// <summary>The prompt for <paramref name="messages"/>; see <see cref="ChatTemplate.Render(IReadOnlyList{ChatMessage}, bool, IReadOnlyDictionary{string, object?}?, string?, string?)"/>.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? extra = null) =>
        Template.Render(messages, addGenerationPrompt, extra, BosToken, EosToken);
}
