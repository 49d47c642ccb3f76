using System.Text.Json;

namespace Kangaroo.Model;

/// <summary>The parts of Hugging Face <c>generation_config.json</c> the engine uses as defaults.</summary>
public sealed record GenerationConfig
{
    public const string FileName = "generation_config.json";

    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    public bool? DoSample { get; init; }
    public double? Temperature { get; init; }
    public int? TopK { get; init; }
    public double? TopP { get; init; }
    public int? MaxNewTokens { get; init; }

    /// <summary>What a request that names no sampling parameter gets: greedy, unless the file says do_sample (then its values, else 1, 0, 1).</summary>
    public (float Temperature, int TopK, float TopP) DefaultSampling =>
        DoSample == true ? ((float)(Temperature ?? 1.0), TopK ?? 0, (float)(TopP ?? 1.0)) : (0f, 0, 1f);

    /// <summary>The file's settings, or an empty config when the directory has none.</summary>
    public static GenerationConfig LoadFromDirectory(string directory)
    {
        string path = Path.Combine(directory, FileName);
        if (!ModelFiles.Exists(path)) return new GenerationConfig();
        using var doc = ModelFiles.ReadJsonObject(path, ModelFiles.MaxConfigBytes, "a generation_config.json file");
        var root = doc.RootElement;
        var config = new GenerationConfig
        {
            BosTokenId = Int(root, "bos_token_id", path),
            EosTokenIds = IntList(root, "eos_token_id", path),
            DoSample = Bool(root, "do_sample", path),
            Temperature = Number(root, "temperature", path),
            TopK = Int(root, "top_k", path),
            TopP = Number(root, "top_p", path),
            MaxNewTokens = Int(root, "max_new_tokens", path),
        };
        // These become sampling defaults: a value no request could give is this file's error, not the request's.
        if (config.Temperature is double t && (!(t >= 0) || !float.IsFinite((float)t)))
            throw new ModelFormatException(path, $"field \"temperature\" must be a finite number ≥ 0, got {t}");
        if (config.TopK is int k && k < 0)
            throw new ModelFormatException(path, $"field \"top_k\" must be ≥ 0, got {k}");
        if (config.TopP is double p && !(p > 0 && p <= 1))
            throw new ModelFormatException(path, $"field \"top_p\" must be in (0, 1], got {p}");
        if (config.MaxNewTokens is int m && m < 1)
            throw new ModelFormatException(path, $"field \"max_new_tokens\" must be at least 1, got {m}");
        return config;
    }

    private static bool? Bool(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ModelFormatException(path, $"field \"{name}\" must be true or false, got {v.GetRawText()}"),
        };
    }

    private static double? Number(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number) throw new ModelFormatException(path, $"field \"{name}\" must be a number, got {v.GetRawText()}");
        return v.GetDouble();
    }

    private static int? Int(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int i))
            throw new ModelFormatException(path, $"field \"{name}\" must be an integer, got {v.GetRawText()}");
        return i;
    }

    private static IReadOnlyList<int> IntList(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return [];
        if (v.ValueKind != JsonValueKind.Array) return [Int(root, name, path)!.Value];
        var list = new List<int>();
        foreach (var item in v.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out int i))
                throw new ModelFormatException(path, $"field \"{name}\" must hold integers, got {item.GetRawText()}");
            list.Add(i);
        }
        return list;
    }
}
