namespace Kangaroo.Cuda;

/// <summary>A launch dimension (grid in blocks, or block in threads), as CUDA's dim3.</summary>
public readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1)
{
    public static implicit operator Dim3(uint x) => new(x);

    /// <summary>X·Y·Z.</summary>
    public ulong Volume => (ulong)X * Y * Z;

    public override string ToString() => $"({X}, {Y}, {Z})";
}
