using System.Text.Json;

namespace Kangaroo.Tokenization;

/// <summary>
/// The BOS/EOS settings of a Hugging Face <c>tokenizer_config.json</c>. A token that the file does not mention is
/// <see cref="SpecialToken.Unspecified"/>; an explicit <c>null</c> means the model has no such token.
/// </summary>
internal sealed record TokenizerConfig(bool? AddBosToken, bool? AddEosToken, SpecialToken BosToken, SpecialToken EosToken,
    bool? CleanUpTokenizationSpaces = null)
{
    public const string FileName = "tokenizer_config.json";

    public static readonly TokenizerConfig Absent = new(null, null, SpecialToken.Unspecified, SpecialToken.Unspecified);

    /// <summary>Reads the directory's tokenizer_config.json, or <see cref="Absent"/> when there is none.</summary>
    public static TokenizerConfig Load(string modelDirectory)
    {
        string path = Path.Combine(modelDirectory, FileName);
        if (!ModelFiles.Exists(path))
            return Absent;

        using JsonDocument document = ModelFiles.ReadJsonObject(path, ModelFiles.MaxTokenizerBytes, "a tokenizer_config.json file");
        JsonElement root = document.RootElement;
        return new TokenizerConfig(
            ReadFlag(root, "add_bos_token", path),
            ReadFlag(root, "add_eos_token", path),
            ReadToken(root, "bos_token", path),
            ReadToken(root, "eos_token", path),
            ReadFlag(root, "clean_up_tokenization_spaces", path));
    }

    private static bool? ReadFlag(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out JsonElement value))
            return null;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Null => null,
            _ => throw new ModelFormatException(path, $"\"{name}\" must be true or false, found {value.ValueKind}"),
        };
    }

    /// <summary>A token is written as a string or as an AddedToken object whose "content" is the string.</summary>
    private static SpecialToken ReadToken(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out JsonElement value))
            return SpecialToken.Unspecified;
        switch (value.ValueKind)
        {
            case JsonValueKind.Null:
                return SpecialToken.None;
            case JsonValueKind.String:
                return new SpecialToken(value.GetString());
            case JsonValueKind.Object when value.TryGetProperty("content", out JsonElement content) && content.ValueKind == JsonValueKind.String:
                return new SpecialToken(content.GetString());
            default:
                throw new ModelFormatException(path, $"\"{name}\" must be a string, an object with a string \"content\", or null");
        }
    }
}

/// <summary>A BOS/EOS token as tokenizer_config.json names it.</summary>
internal readonly record struct SpecialToken(string? Content, bool IsSpecified = true)
{
    public static readonly SpecialToken Unspecified = new(null, IsSpecified: false);
    public static readonly SpecialToken None = new(null);
}
