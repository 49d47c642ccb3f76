using System.Numerics.Tensors;

namespace Kangaroo.Backends;

/// <summary>
/// <see cref="IComputeBackend.TopKWithProbabilities"/> on the host: the plain reference the device kernels are checked against.
/// </summary>
public static class TopKReference
{
    /// <summary>
    /// The tokens.Length largest of <paramref name="logits"/>, value descending and the lowest index first among equals
    /// (NaN and −inf never taken), with softmax probabilities e^(l − max) / Σ e^(l − max) summed in double precision;
    /// slots left over get id −1 and probability 0.
    /// </summary>
    public static void Select(ReadOnlySpan<float> logits, Span<int> tokens, Span<float> probabilities)
    {
        int k = tokens.Length;
        if (probabilities.Length != k) throw new ArgumentException($"{probabilities.Length} probabilities for {k} tokens", nameof(probabilities));
        if (k == 0) return;
        tokens.Fill(-1);
        probabilities.Fill(float.NegativeInfinity);   // holds logits until the end
        for (int v = 0; v < logits.Length; v++)
        {
            float x = logits[v];
            if (!(x > probabilities[k - 1])) continue;   // equal to the last kept: the earlier index stays; NaN never enters
            int at = k - 1;
            while (at > 0 && x > probabilities[at - 1])
            {
                probabilities[at] = probabilities[at - 1];
                tokens[at] = tokens[at - 1];
                at--;
            }
            probabilities[at] = x;
            tokens[at] = v;
        }
        if (tokens[0] < 0)
        {
            probabilities.Clear();
            return;
        }
        float max = probabilities[0];
        double sum = 0;
        foreach (float x in logits) sum += Math.Exp(x - max);
        for (int i = 0; i < k; i++)
            probabilities[i] = tokens[i] < 0 ? 0 : (float)(Math.Exp(probabilities[i] - max) / sum);
    }
}
