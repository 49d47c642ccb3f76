namespace Kangaroo.Model;

/// <summary>
/// What a forward pass over staged rows computes: optionally the embedding of their tokens, decoder layers
/// [<see cref="FirstLayer"/>, <see cref="EndLayer"/>) (the Kangaroo adapter: its one layer), and the logits of rows
/// [<see cref="LogitsFrom"/>, rows) (−1: none). With the staged <see cref="PassShape"/> it is the typed key of a recorded pass.
/// </summary>
public readonly record struct ForwardPass(bool Embed, int FirstLayer, int EndLayer, int LogitsFrom)
{
    public const int NoLogits = -1;

    /// <summary>The whole model: embedding, every layer, logits of every row.</summary>
    public static ForwardPass Full(int layers) => new(true, 0, layers, 0);
}

/// <summary>Which network a recorded pass runs.</summary>
internal enum PassNetwork { Base, Adapter }

/// <summary>The key of a recorded pass: which network, what it computes, over which rows, on which cache.</summary>
internal readonly record struct RecordedPassKey(PassNetwork Network, ForwardPass Pass, PassShape Shape, Backends.KvCacheStorage Cache);
