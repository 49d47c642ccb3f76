using System.Numerics.Tensors;
using Kangaroo.Backends;

namespace Kangaroo.Sampling;

/// <summary>
/// The once-per-step check that a forward pass produced usable logits. It costs nothing extra on a device: the softmax
/// probability of each row's choice, which the step copies back anyway, is NaN whenever the row held a NaN or an
/// infinity, so checking those few floats on the host checks the whole row.
/// </summary>
internal static class FiniteLogits
{
    /// <summary><see cref="IComputeBackend.ArgmaxWithProbability"/>, then the check of the rows' probabilities.</summary>
    public static void ArgmaxWithProbabilityChecked(this IComputeBackend backend, ComputeBuffer logits, int rows, int vocab,
        Span<int> tokens, Span<float> probabilities)
    {
        backend.ArgmaxWithProbability(logits, rows, vocab, tokens, probabilities);
        foreach (float p in probabilities[..rows])
        {
            if (!float.IsFinite(p)) throw Produced();
        }
    }

    /// <summary><see cref="IComputeBackend.TopKWithProbabilities"/>, then the check that every row has a finite best proposal.</summary>
    public static void TopKWithProbabilitiesChecked(this IComputeBackend backend, ComputeBuffer logits, int rows, int vocab, int k,
        Span<int> tokens, Span<float> probabilities)
    {
        backend.TopKWithProbabilities(logits, rows, vocab, k, tokens, probabilities);
        for (int r = 0; r < rows; r++)
        {
            if (tokens[r * k] < 0) throw Produced();
        }
        foreach (float p in probabilities[..(rows * k)])
        {
            if (!float.IsFinite(p)) throw Produced();
        }
    }

    /// <summary>For logits already on the host (sampling): one vectorized sum is non-finite exactly when an element is.</summary>
    public static void Check(ReadOnlySpan<float> logits)
    {
        if (!float.IsFinite(TensorPrimitives.Sum(logits))) throw Produced();
    }

    public static NonFiniteLogitsException Produced() =>
        new("the forward pass produced non-finite logits (NaN or infinity), so no token can be chosen from them");
}
