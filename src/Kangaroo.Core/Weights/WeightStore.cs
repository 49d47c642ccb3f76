namespace Kangaroo.Weights;

/// <summary>
/// All weight tensors of a model directory: a single <c>model.safetensors</c> or the shards named by
/// <c>model.safetensors.index.json</c>, memory-mapped. Disposing it unmaps every file (views die with it).
/// </summary>
public sealed class WeightStore : IDisposable
{
    private WeightStore() => throw new NotImplementedException();

    /// <summary>
    /// Opens the weights of <paramref name="directory"/>: <c>model.safetensors.index.json</c> if present
    /// (every shard it names must exist and hold the tensors the index says), else <c>model.safetensors</c>.
    /// </summary>
    public static WeightStore OpenDirectory(string directory) => throw new NotImplementedException();

    /// <summary>Opens exactly one safetensors file.</summary>
    public static WeightStore OpenFile(string path) => throw new NotImplementedException();

    public IReadOnlyCollection<string> TensorNames => throw new NotImplementedException();

    /// <summary>The files backing this store.</summary>
    public IReadOnlyList<string> Files => throw new NotImplementedException();

    public bool Contains(string name) => throw new NotImplementedException();

    /// <summary>The tensor, or a <see cref="ModelFormatException"/> naming it and the directory.</summary>
    public TensorView Get(string name) => throw new NotImplementedException();

    /// <summary>
    /// The tensor, checked against the expected shape: a mismatch is a <see cref="ModelFormatException"/>
    /// whose message names the tensor, the expected shape and the actual shape.
    /// </summary>
    public TensorView Get(string name, params int[] expectedShape) => throw new NotImplementedException();

    public void Dispose() => throw new NotImplementedException();
}
