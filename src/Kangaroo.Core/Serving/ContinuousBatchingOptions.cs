using Kangaroo.Speculative;

namespace Kangaroo.Serving;

/// <summary>How a <see cref="ContinuousBatcher"/> shares its passes: slots, queue and the Kangaroo settings requests may choose.</summary>
public sealed record ContinuousBatchingOptions
{
    /// <summary>Sequences decoded at once; more requests wait in the queue for a free slot.</summary>
    public int MaxSequences { get; init; } = 16;

    /// <summary>Positions each sequence holds (prompt + generated); null = the model's <see cref="LanguageModel.ContextLength"/>.</summary>
    public int? ContextLength { get; init; }

    /// <summary>Requests that may wait for a slot; one more is refused with <see cref="ServerBusyException"/>.</summary>
    public int MaxQueuedRequests { get; init; } = 64;

    /// <summary>
    /// The Kangaroo settings of the engine (needs the model's adapter); null = vanilla decoding only. A request chooses
    /// Kangaroo by giving these settings as its <see cref="Generation.GenerationOptions.Speculation"/>, or plain decoding
    /// with null; both kinds share the same rounds.
    /// </summary>
    public KangarooOptions? Speculation { get; init; }

    /// <summary>Throws <see cref="InvalidRequestException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (MaxSequences < 1) throw new InvalidRequestException($"max sequences must be at least 1, got {MaxSequences}");
        if (MaxQueuedRequests < 0) throw new InvalidRequestException($"the queue length must be ≥ 0, got {MaxQueuedRequests}");
        if (ContextLength is < 2) throw new InvalidRequestException($"context length must be at least 2, got {ContextLength}");
    }
}

/// <summary>Why a request was refused without being served: the queue is full, or the engine is stopping.</summary>
public sealed class ServerBusyException : KangarooException
{
    public ServerBusyException(string message, bool shuttingDown) : base(message) => ShuttingDown = shuttingDown;

    /// <summary>The engine is stopping (no request will be served again) rather than momentarily full.</summary>
    public bool ShuttingDown { get; }
}

/// <summary>Counters of a <see cref="ContinuousBatcher"/> since it started.</summary>
/// <param name="TokensPerSecond">Tokens generated per second over the last few seconds.</param>
/// <param name="Drafted">Draft tokens proposed by finished Kangaroo requests.</param>
/// <param name="Accepted">Of those, the ones verification accepted.</param>
/// <param name="RequestsCancelled">Of the finished requests, those cancelled (by their caller, a disconnect or a stop past its drain).</param>
public sealed record BatcherStatistics(long RequestsFinished, long RequestsCancelled, long RequestsFailed, long TokensGenerated, long Rounds,
    long Drafted, long Accepted, long SpeculativeRounds, double TokensPerSecond)
{
    /// <summary>Accepted ÷ drafted; null before any Kangaroo request finished with a draft.</summary>
    public double? AcceptanceRate => Drafted == 0 ? null : (double)Accepted / Drafted;
}
