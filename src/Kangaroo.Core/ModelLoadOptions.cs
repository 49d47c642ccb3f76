using Kangaroo.Backends;
using Kangaroo.Model;

namespace Kangaroo;

/// <summary>How to load a <see cref="LanguageModel"/>.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>The backend to compute on. The model does not dispose it (one backend may serve several models).</summary>
    public required IComputeBackend Backend { get; init; }

    /// <summary>Reports weight loading (bytes made available to the backend).</summary>
    public IProgress<LoadProgress>? Progress { get; init; }

    /// <summary>Default context (KV cache positions) of sessions; null = min(max_position_embeddings, 4096).</summary>
    public int? ContextLength { get; init; }

    /// <summary>
    /// The Kangaroo adapter to load. Null = the model directory's <c>kangaroo-adapter/</c> subfolder when it exists
    /// (no adapter otherwise); <see cref="LoadAdapter"/> = false skips it.
    /// </summary>
    public string? AdapterDirectory { get; init; }

    public bool LoadAdapter { get; init; } = true;
}
