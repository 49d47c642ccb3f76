namespace Kangaroo.Chat;

/// <summary>
/// A Hugging Face chat template (the Jinja2 text in tokenizer_config.json's <c>chat_template</c>), parsed once and
/// rendered into a prompt the way transformers' <c>apply_chat_template(..., tokenize=False)</c> renders it.
/// </summary>
/// <remarks>
/// There is no Jinja engine for .NET to lean on, so this is the subset of Jinja2 that chat templates use, with the
/// environment transformers sets up: <c>trim_blocks</c> and <c>lstrip_blocks</c> on, <c>break</c>/<c>continue</c>,
/// <c>raise_exception</c>, <c>strftime_now</c> and a <c>tojson</c> that keeps non-ASCII text. Macros, includes and
/// template inheritance are refused by name when parsed.
/// </remarks>
public sealed class ChatTemplate
{
    private readonly IReadOnlyList<StatementNode> _body;

    private ChatTemplate(string source, IReadOnlyList<StatementNode> body)
    {
        Source = source;
        _body = body;
    }

    /// <summary>The template text as given.</summary>
    public string Source { get; }

    /// <summary>
    /// Parses <paramref name="source"/>; a syntax error is a <see cref="ChatTemplateException"/> naming the line and
    /// column and what was expected there.
    /// </summary>
    public static ChatTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new ChatTemplate(source, TemplateParser.Parse(source));
    }

    /// <summary>
    /// The prompt for <paramref name="messages"/>. The template sees <c>messages</c> (dicts with <c>role</c> and
    /// <c>content</c>), <c>add_generation_prompt</c>, <c>bos_token</c> and <c>eos_token</c> (none when not given), and
    /// every entry of <paramref name="extra"/> (tools, date_string, ...; an entry named like one of those replaces it).
    /// A failure, including the template's own <c>raise_exception('...')</c>, is a <see cref="ChatTemplateException"/>.
    /// </summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt,
        IReadOnlyDictionary<string, object?>? extra = null, string? bosToken = null, string? eosToken = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages,
            ["add_generation_prompt"] = addGenerationPrompt,
            ["bos_token"] = bosToken,
            ["eos_token"] = eosToken,
        };
        if (extra is not null)
            foreach (var (name, value) in extra) variables[name] = value;
        return Render(variables);
    }

    /// <summary>Renders with exactly <paramref name="variables"/> (converted as the other overload converts them).</summary>
    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var globals = new RenderScope(null);
        foreach (var (name, value) in TemplateBuiltins.Globals) globals.Set(name, value);
        foreach (var (name, value) in variables)
        {
            try
            {
                globals.Set(name, TemplateValues.FromClr(value));
            }
            catch (ArgumentException e)
            {
                throw new ChatTemplateException($"chat template variable '{name}': {e.Message}");
            }
        }
        var context = new RenderContext(globals);
        StatementNode.RenderAll(_body, context);
        return context.Output.ToString();
    }
}
