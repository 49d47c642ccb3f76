using System.Net;
using Kangaroo.Speculative;

namespace Kangaroo.Server;

/// <summary>How <see cref="KangarooServer"/> listens, what it serves and its limits.</summary>
public sealed record KangarooServerOptions
{
    /// <summary>An IP address or <c>localhost</c>; loopback by default, so nothing outside the machine reaches the server unless asked.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>TCP port; 0 = any free port (<see cref="KangarooServer.BaseAddress"/> says which).</summary>
    public int Port { get; init; } = 8080;

    /// <summary>When set, every <c>/v1</c> request needs <c>Authorization: Bearer</c> this key.</summary>
    public string? ApiKey { get; init; }

    /// <summary>The model id of <c>/v1/models</c> that requests name; null = the model directory's name.</summary>
    public string? ModelId { get; init; }

    /// <summary>Sequences decoded together (continuous batching slots).</summary>
    public int MaxSequences { get; init; } = 16;

    /// <summary>Requests that may wait for a slot; one more gets 429.</summary>
    public int MaxQueuedRequests { get; init; } = 256;

    /// <summary>Positions each sequence holds (prompt + generated); null = the model's context length.</summary>
    public int? ContextLength { get; init; }

    /// <summary>Largest request body in bytes; a larger one gets 413.</summary>
    public long MaxRequestBodyBytes { get; init; } = 1 << 20;

    /// <summary>Most new tokens a request may ask for; null = the context length.</summary>
    public int? MaxTokensLimit { get; init; }

    /// <summary>New tokens of a request that does not say; null = the model's max_new_tokens, else 256.</summary>
    public int? DefaultMaxTokens { get; init; }

    /// <summary>Kangaroo settings of the engine (needs the model's adapter); null = plain decoding only.</summary>
    public KangarooOptions? Speculation { get; init; }

    /// <summary>Whether requests that do not say (<c>"kangaroo": true|false</c>) use Kangaroo, when it is enabled.</summary>
    public bool KangarooByDefault { get; init; } = true;

    /// <summary>How long a graceful shutdown lets running requests finish before cancelling them.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Where the server reports failures that are not the client's (null = nowhere).</summary>
    public TextWriter? Log { get; init; }

    /// <summary>Throws <see cref="InvalidRequestException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        _ = ListenAddress;
        if (Port is < 0 or > 65535) throw new InvalidRequestException($"the port must be in [0, 65535], got {Port}");
        if (ApiKey is { Length: 0 }) throw new InvalidRequestException("the API key must not be empty");
        if (ModelId is { Length: 0 }) throw new InvalidRequestException("the model id must not be empty");
        if (MaxSequences < 1) throw new InvalidRequestException($"max sequences must be at least 1, got {MaxSequences}");
        if (MaxQueuedRequests < 0) throw new InvalidRequestException($"the queue length must be ≥ 0, got {MaxQueuedRequests}");
        if (MaxRequestBodyBytes < 1024) throw new InvalidRequestException($"the body size limit must be at least 1024 bytes, got {MaxRequestBodyBytes}");
        if (MaxTokensLimit is < 1) throw new InvalidRequestException($"the max tokens limit must be at least 1, got {MaxTokensLimit}");
        if (DefaultMaxTokens is < 1) throw new InvalidRequestException($"the default max tokens must be at least 1, got {DefaultMaxTokens}");
        if (ShutdownTimeout < TimeSpan.Zero) throw new InvalidRequestException($"the shutdown timeout must be ≥ 0, got {ShutdownTimeout}");
    }

    internal IPAddress ListenAddress =>
        Host == "localhost" ? IPAddress.Loopback
        : IPAddress.TryParse(Host, out var address) ? address
        : throw new InvalidRequestException($"the host must be an IP address or localhost, got '{Host}'");
}
