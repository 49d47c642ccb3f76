namespace Kangaroo.Model;

/// <summary>What <see cref="LlamaModel.Stage"/> staged, as the attention and a recorded pass need it.</summary>
/// <param name="Rows">Rows of the pass.</param>
/// <param name="Window">Recent slots per row (0: plain causal attention).</param>
/// <param name="Sequences">Whether the cache holds several sequences (attention reads each row's own).</param>
public readonly record struct PassShape(int Rows, int Window, bool Sequences);
