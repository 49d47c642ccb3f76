namespace Kangaroo.Sampling;

/// <summary>
/// How a token is chosen from a row of logits: greedy (temperature 0: the argmax) or a draw after temperature, top-k and
/// top-p: the part of a generation's options that choosing, drafting and verification read.
/// </summary>
public readonly record struct SamplingSettings(float Temperature, int TopK, float TopP)
{
    public static SamplingSettings Greedy => new(0, 0, 1);

    public bool IsGreedy => Temperature == 0;
}
