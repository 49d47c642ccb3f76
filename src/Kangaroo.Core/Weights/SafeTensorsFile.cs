namespace Kangaroo.Weights;

/// <summary>
/// One memory-mapped .safetensors file, read strictly: every problem with the header or the offsets is a
/// <see cref="ModelFormatException"/> naming the file (and the tensor where there is one).
/// </summary>
public sealed class SafeTensorsFile : IDisposable
{
    /// <summary>Headers larger than this are refused (a corrupt length must not allocate gigabytes).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private SafeTensorsFile() => throw new NotImplementedException();

    /// <summary>Opens and validates <paramref name="path"/>: header JSON, dtypes, offsets in bounds, non-overlapping, matching shape × dtype.</summary>
    public static SafeTensorsFile Open(string path) => throw new NotImplementedException();

    public string Path => throw new NotImplementedException();

    /// <summary>The optional "__metadata__" string map.</summary>
    public IReadOnlyDictionary<string, string> Metadata => throw new NotImplementedException();

    /// <summary>Tensor names in header order.</summary>
    public IReadOnlyList<string> TensorNames => throw new NotImplementedException();

    public bool Contains(string name) => throw new NotImplementedException();

    /// <summary>The tensor called <paramref name="name"/>; a <see cref="ModelFormatException"/> if absent.</summary>
    public TensorView Get(string name) => throw new NotImplementedException();

    public void Dispose() => throw new NotImplementedException();
}
