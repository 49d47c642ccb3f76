using System.Text.Json;
using Kangaroo.Tokenization;

namespace Kangaroo.Chat;

/// <summary>
/// The chat template of a model directory, from tokenizer_config.json: <c>chat_template</c> is a string, or (since
/// transformers 4.43) a list of <c>{"name", "template"}</c> objects of which the one named <c>default</c> is used.
/// Reading follows the project's rules for model files: a missing, unreadable or malformed file or field is a
/// <see cref="ModelFormatException"/> naming the file and the field.
/// </summary>
public static class ChatTemplateConfig
{
    public const string FieldName = "chat_template";

    /// <summary>
    /// The parsed template of <paramref name="modelDirectory"/>'s tokenizer_config.json, with the file's
    /// <c>bos_token</c> and <c>eos_token</c> (strings or AddedToken objects), which the template renders as such.
    /// </summary>
    public static ModelChatTemplate Load(string modelDirectory)
    {
        string path = Path.Combine(modelDirectory, TokenizerConfig.FileName);
        if (!ModelFiles.Exists(path))
            throw new ModelFormatException(path, $"not found; the chat template is read from its \"{FieldName}\" field");
        string source;
        using (JsonDocument document = ModelFiles.ReadJsonObject(path, ModelFiles.MaxTokenizerBytes, "a tokenizer_config.json file"))
            source = ReadSource(document.RootElement, path);
        TokenizerConfig tokens = TokenizerConfig.Load(modelDirectory);
        try
        {
            return new ModelChatTemplate(ChatTemplate.Parse(source), tokens.BosToken.Content, tokens.EosToken.Content);
        }
        catch (ChatTemplateException e)
        {
            throw new ModelFormatException(path, $"\"{FieldName}\" is not a template this engine can read: {e.Message}", e);
        }
    }

    /// <summary>
    /// <see cref="Load"/>, or null when the directory has no tokenizer_config.json or the file no <c>chat_template</c>
    /// (a base model: its completion API still works). A template that is there but malformed is still an error.
    /// </summary>
    public static ModelChatTemplate? TryLoad(string modelDirectory)
    {
        string path = Path.Combine(modelDirectory, TokenizerConfig.FileName);
        if (!ModelFiles.Exists(path)) return null;
        using (JsonDocument document = ModelFiles.ReadJsonObject(path, ModelFiles.MaxTokenizerBytes, "a tokenizer_config.json file"))
        {
            if (document.RootElement.ValueKind == JsonValueKind.Object
                && (!document.RootElement.TryGetProperty(FieldName, out JsonElement value) || value.ValueKind == JsonValueKind.Null))
                return null;
        }
        return Load(modelDirectory);
    }

    /// <summary>The template text in a tokenizer_config.json object (already parsed as JSON).</summary>
    internal static string ReadSource(JsonElement root, string path)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw new ModelFormatException(path, "expected a JSON object");
        if (!root.TryGetProperty(FieldName, out JsonElement value) || value.ValueKind == JsonValueKind.Null)
            throw new ModelFormatException(path, $"has no \"{FieldName}\" field: the model does not say how to format a conversation");
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                return value.GetString()!;
            case JsonValueKind.Array:
            {
                var names = new List<string>();
                foreach (JsonElement entry in value.EnumerateArray())
                {
                    if (entry.ValueKind != JsonValueKind.Object
                        || !entry.TryGetProperty("name", out JsonElement name) || name.ValueKind != JsonValueKind.String
                        || !entry.TryGetProperty("template", out JsonElement template) || template.ValueKind != JsonValueKind.String)
                        throw new ModelFormatException(path, $"\"{FieldName}\" entries must be objects with a string \"name\" and a string \"template\"");
                    if (name.GetString() == "default") return template.GetString()!;
                    names.Add(name.GetString()!);
                }
                throw new ModelFormatException(path, $"\"{FieldName}\" has no template named \"default\" (found: {(names.Count == 0 ? "none" : string.Join(", ", names))})");
            }
            default:
                throw new ModelFormatException(path, $"\"{FieldName}\" must be a string or a list of {{\"name\", \"template\"}} objects, found {value.ValueKind}");
        }
    }
}
