using System.Text.Json;

namespace Kangaroo.Weights;

/// <summary>The "weight_map" of a <c>model.safetensors.index.json</c>: which shard file holds which tensor.</summary>
internal sealed class ShardIndex
{
    private ShardIndex(Dictionary<string, string> shardByTensor, List<string> tensorsInOrder, List<string> shardsInOrder)
    {
        ShardByTensor = shardByTensor;
        TensorsInOrder = tensorsInOrder;
        ShardsInOrder = shardsInOrder;
    }

    public Dictionary<string, string> ShardByTensor { get; }
    public List<string> TensorsInOrder { get; }
    /// <summary>Each shard once, in order of first mention.</summary>
    public List<string> ShardsInOrder { get; }

    public string FirstTensorOf(string shard) => TensorsInOrder.First(tensor => ShardByTensor[tensor] == shard);

    public static ShardIndex Read(string path)
    {
        byte[] json = ModelFiles.ReadBounded(path, ModelFiles.MaxIndexBytes, "a model.safetensors.index.json file");
        ModelFiles.RequireUtf8(json, path);
        try
        {
            return Parse(path, json);
        }
        catch (JsonException exception)
        {
            throw new ModelFormatException(path, $"index is not valid JSON: {exception.Message}", exception);
        }
        catch (InvalidOperationException exception)
        {
            // A string escape that is not valid UTF-16 (a lone surrogate such as "\ud800") cannot be read as a string.
            throw new ModelFormatException(path, $"index holds a string that is not valid text: {exception.Message}", exception);
        }
    }

    private static ShardIndex Parse(string path, ReadOnlySpan<byte> json)
    {
        // The reader rejects trailing content and incomplete documents itself; UTF-8 was checked before.
        var reader = new Utf8JsonReader(json);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            throw new ModelFormatException(path, $"index must be a JSON object with a \"weight_map\", found {reader.TokenType}");

        ShardIndex? index = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool isWeightMap = reader.ValueTextEquals("weight_map"u8);
            reader.Read();
            if (!isWeightMap)
            {
                reader.Skip(); // "metadata" (total_size, ...) is informational.
                continue;
            }
            if (index is not null) throw new ModelFormatException(path, "\"weight_map\" appears twice");
            index = ReadWeightMap(path, ref reader);
        }
        reader.Read();
        return index ?? throw new ModelFormatException(path, "index has no \"weight_map\" object (tensor name → shard file name)");
    }

    private static ShardIndex ReadWeightMap(string path, ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
            throw new ModelFormatException(path, $"\"weight_map\" must be an object of tensor name → shard file name, found {reader.TokenType}");
        var shardByTensor = new Dictionary<string, string>(StringComparer.Ordinal);
        var tensors = new List<string>();
        var shards = new List<string>();
        var knownShards = new HashSet<string>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            string tensor = reader.GetString()!;
            reader.Read();
            if (reader.TokenType != JsonTokenType.String)
                throw new ModelFormatException(path, $"tensor \"{tensor}\": weight_map value must be a shard file name string, found {reader.TokenType}");
            string shard = reader.GetString()!;
            // Shards live next to the index; a path elsewhere is more likely corruption or mischief than intent.
            if (shard.Length == 0 || shard is "." or ".." || Path.GetFileName(shard) != shard || shard.Contains('\\'))
                throw new ModelFormatException(path, $"tensor \"{tensor}\": shard \"{shard}\" is not a plain file name in the model directory");
            if (!shardByTensor.TryAdd(tensor, shard))
                throw new ModelFormatException(path, $"tensor \"{tensor}\" appears twice in weight_map (shards \"{shardByTensor[tensor]}\" and \"{shard}\")");
            tensors.Add(tensor);
            if (knownShards.Add(shard)) shards.Add(shard);
        }
        return new ShardIndex(shardByTensor, tensors, shards);
    }
}
