using Kangaroo.Sampling;
using Kangaroo.Speculative;

namespace Kangaroo.Generation;

/// <summary>How to generate: sampling parameters and stop conditions. Validated by <see cref="Validate"/>.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to generate.</summary>
    public int MaxNewTokens { get; init; } = 256;

    /// <summary>0 = greedy (argmax); otherwise logits are divided by it before sampling.</summary>
    public float Temperature { get; init; }

    /// <summary>Keep only the K most likely tokens (0 = off).</summary>
    public int TopK { get; init; }

    /// <summary>Keep the smallest set of most likely tokens whose probability reaches P (1 = off).</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Seed of the sampler: same seed, same prompt, same options → same output. Null = random seed.</summary>
    public ulong? Seed { get; init; }

    /// <summary>Generation stops when the text contains one of these; the stop string is not part of the output.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>Stop at the model's end-of-sequence token(s).</summary>
    public bool StopAtEndOfSequence { get; init; } = true;

    /// <summary>Prepend BOS to the prompt; null = as the tokenizer configuration says.</summary>
    public bool? AddBos { get; init; }

    /// <summary>Decode with Kangaroo self-speculative decoding (needs a loaded adapter); null = vanilla decoding.</summary>
    public KangarooOptions? Speculation { get; init; }

    public bool IsGreedy => Temperature == 0;

    /// <summary>How tokens are chosen: temperature, top-k and top-p.</summary>
    public SamplingSettings Sampling => new(Temperature, TopK, TopP);

    /// <summary>Throws <see cref="InvalidRequestException"/> naming the first invalid parameter.</summary>
    public void Validate()
    {
        if (MaxNewTokens < 1)
            throw new InvalidRequestException($"max new tokens must be at least 1, got {MaxNewTokens}");
        if (!float.IsFinite(Temperature) || Temperature < 0)
            throw new InvalidRequestException($"temperature must be a finite number ≥ 0 (0 = greedy), got {Temperature}");
        if (TopK < 0)
            throw new InvalidRequestException($"top-k must be ≥ 0 (0 = off), got {TopK}");
        if (!(TopP > 0 && TopP <= 1))
            throw new InvalidRequestException($"top-p must be in (0, 1] (1 = off), got {TopP}");
        foreach (string stop in StopStrings)
        {
            if (string.IsNullOrEmpty(stop)) throw new InvalidRequestException("stop strings must not be empty");
        }
    }
}
