namespace Kangaroo.Sampling;

/// <summary>
/// Turns a row of logits into the next token: argmax, or sampling after temperature, top-k and top-p (nucleus).
/// <see cref="ComputeDistribution"/> exposes the exact distribution sampled from, which speculative sampling needs for
/// both target and draft. One instance per session: it keeps scratch space so steps do not allocate.
/// </summary>
public sealed class TokenSampler
{
    private readonly int[] _order;
    private readonly double[] _weights;
    private readonly (float Logit, int Id)[] _pairs;

    public TokenSampler(int vocabSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabSize, 1);
        VocabSize = vocabSize;
        _order = new int[vocabSize];
        _weights = new double[vocabSize];
        _pairs = new (float, int)[vocabSize];
    }

    public int VocabSize { get; }

    /// <summary>Index of the largest logit; the lowest index wins ties (as the device argmax kernels do).</summary>
    public static int Argmax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        float bestValue = logits[0];
        for (int i = 1; i < logits.Length; i++)
        {
            if (logits[i] > bestValue)
            {
                bestValue = logits[i];
                best = i;
            }
        }
        return best;
    }

    /// <summary>The next token: argmax when greedy, else a draw from <see cref="ComputeDistribution"/>.</summary>
    public int Sample(ReadOnlySpan<float> logits, SamplingSettings options, DeterministicRandom random, Span<float> probabilityScratch)
    {
        if (options.IsGreedy)
        {
            FiniteLogits.Check(logits[..VocabSize]);
            return Argmax(logits);
        }
        ComputeDistribution(logits, options, probabilityScratch);
        return SampleFrom(probabilityScratch, random);
    }

    /// <summary>
    /// Writes into <paramref name="probabilities"/> the distribution that sampling with <paramref name="options"/> draws
    /// from: softmax(logits / temperature) restricted to the top-k tokens (lower ids win ties at the boundary), then to
    /// the smallest most-likely set reaching top-p, renormalized; zero elsewhere. Greedy options give a one-hot vector.
    /// </summary>
    public void ComputeDistribution(ReadOnlySpan<float> logits, SamplingSettings options, Span<float> probabilities)
    {
        int vocab = VocabSize;
        if (logits.Length < vocab || probabilities.Length < vocab)
            throw new ArgumentException($"logits and probabilities need {vocab} elements");
        FiniteLogits.Check(logits[..vocab]);
        probabilities[..vocab].Clear();
        if (options.IsGreedy)
        {
            probabilities[Argmax(logits[..vocab])] = 1f;
            return;
        }

        int kept = SelectCandidates(logits[..vocab], options.TopK);
        double inverseTemperature = 1.0 / options.Temperature;
        double max = logits[_order[0]];
        double sum = 0;
        for (int j = 0; j < kept; j++)
        {
            double w = Math.Exp((logits[_order[j]] - max) * inverseTemperature);
            _weights[j] = w;
            sum += w;
        }

        if (options.TopP < 1f)
        {
            double target = options.TopP * sum;
            double cumulative = 0;
            int nucleus = 0;
            while (nucleus < kept)
            {
                cumulative += _weights[nucleus++];
                if (cumulative >= target) break;
            }
            kept = nucleus;
            sum = cumulative;
        }

        for (int j = 0; j < kept; j++) probabilities[_order[j]] = (float)(_weights[j] / sum);
    }

    /// <summary>A draw from a distribution over token ids (need not be exactly normalized), in id order.</summary>
    public static int SampleFrom(ReadOnlySpan<float> probabilities, DeterministicRandom random)
    {
        double total = 0;
        foreach (float p in probabilities) total += p;
        if (!(total > 0)) throw new InvalidOperationException("cannot sample from an all-zero distribution");
        double u = random.NextDouble() * total;
        double cumulative = 0;
        int last = 0;
        for (int i = 0; i < probabilities.Length; i++)
        {
            if (probabilities[i] <= 0) continue;
            cumulative += probabilities[i];
            last = i;
            if (u < cumulative) return i;
        }
        return last;
    }

    /// <summary>
    /// Puts candidate ids into _order, most likely first, and returns how many: the top-k (selected with a min-heap,
    /// O(V log k)) or, without top-k, the whole vocabulary. Ties go to the lower id.
    /// </summary>
    private int SelectCandidates(ReadOnlySpan<float> logits, int topK)
    {
        int vocab = logits.Length;
        if (topK <= 0 || topK >= vocab)
        {
            for (int i = 0; i < vocab; i++) _order[i] = i;
            SortDescending(_order.AsSpan(0, vocab), logits);
            return vocab;
        }

        // Min-heap of the k best so far; its root is the weakest kept candidate.
        Span<int> heap = _order.AsSpan(0, topK);
        for (int i = 0; i < topK; i++)
        {
            heap[i] = i;
            SiftUp(heap, i, logits);
        }
        for (int i = topK; i < vocab; i++)
        {
            if (Better(i, heap[0], logits))
            {
                heap[0] = i;
                SiftDown(heap, 0, logits);
            }
        }
        SortDescending(heap, logits);
        return topK;
    }

    private static bool Better(int a, int b, ReadOnlySpan<float> logits) =>
        logits[a] > logits[b] || (logits[a] == logits[b] && a < b);

    private static void SiftUp(Span<int> heap, int i, ReadOnlySpan<float> logits)
    {
        while (i > 0)
        {
            int parent = (i - 1) / 2;
            if (!Better(heap[parent], heap[i], logits)) break;
            (heap[parent], heap[i]) = (heap[i], heap[parent]);
            i = parent;
        }
    }

    private static void SiftDown(Span<int> heap, int i, ReadOnlySpan<float> logits)
    {
        while (true)
        {
            int left = 2 * i + 1, weakest = i;
            if (left < heap.Length && Better(heap[weakest], heap[left], logits)) weakest = left;
            if (left + 1 < heap.Length && Better(heap[weakest], heap[left + 1], logits)) weakest = left + 1;
            if (weakest == i) return;
            (heap[weakest], heap[i]) = (heap[i], heap[weakest]);
            i = weakest;
        }
    }

    private void SortDescending(Span<int> ids, ReadOnlySpan<float> logits)
    {
        Span<(float Logit, int Id)> pairs = _pairs.AsSpan(0, ids.Length);
        for (int i = 0; i < ids.Length; i++) pairs[i] = (logits[ids[i]], ids[i]);
        pairs.Sort(static (a, b) => a.Logit != b.Logit ? b.Logit.CompareTo(a.Logit) : a.Id.CompareTo(b.Id));
        for (int i = 0; i < ids.Length; i++) ids[i] = pairs[i].Id;
    }
}
