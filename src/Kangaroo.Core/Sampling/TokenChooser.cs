using System.Numerics.Tensors;
using Kangaroo.Backends;

namespace Kangaroo.Sampling;

/// <summary>Where a chooser keeps the distribution a sampled row drew from (speculative sampling verifies against it).</summary>
internal delegate Span<float> DistributionSlot(int row);

/// <summary>
/// The one place a token is chosen from logits on a device, greedy or sampled, row by row with each row's own sequence
/// settings: greedy rows take the device's argmax (only ids and probabilities cross to the host), sampled rows copy their
/// logits to the host and draw from the processed distribution with their sequence's generator. Every decode step, draft
/// step and verification goes through it, so greedy and sampling differ here and nowhere else.
/// </summary>
internal sealed class TokenChooser
{
    private readonly IComputeBackend _backend;
    private readonly TokenSampler _sampler;
    private readonly int _vocab;
    private readonly float[] _rowLogits, _scratch;
    private int[] _argmax = [];
    private float[] _argmaxProbability = [];
    private float[] _hostLogits = [];

    public TokenChooser(IComputeBackend backend, int vocab)
    {
        _backend = backend;
        _vocab = vocab;
        _sampler = new TokenSampler(vocab);
        _rowLogits = new float[vocab];
        _scratch = new float[vocab];
    }

    public TokenSampler Sampler => _sampler;

    /// <summary>
    /// Rows [0, rows) of <paramref name="logits"/>: row r's token with <paramref name="sampling"/>[r] into
    /// <paramref name="tokens"/>[r] and its confidence — the softmax probability of a greedy choice, the largest
    /// probability of a sampled row's distribution — into <paramref name="confidence"/>[r]. With
    /// <paramref name="keep"/>, a sampled row's distribution is written where it says.
    /// </summary>
    public void Choose(ComputeBuffer logits, int rows, ReadOnlySpan<SequenceSampling> sampling, Span<int> tokens, Span<float> confidence,
        DistributionSlot? keep = null)
    {
        bool anyGreedy = false;
        foreach (var s in sampling[..rows]) anyGreedy |= s.IsGreedy;
        if (anyGreedy)
        {
            var best = Argmax(logits, rows, out var probabilities);
            best.CopyTo(tokens);
            probabilities.CopyTo(confidence);
        }
        for (int r = 0; r < rows; r++)
        {
            var s = sampling[r];
            if (s.IsGreedy) continue;
            _backend.Download(logits, r * _vocab, _rowLogits);
            var q = keep is null ? _scratch : keep(r);
            _sampler.ComputeDistribution(_rowLogits, s.Settings, q);
            tokens[r] = TokenSampler.SampleFrom(q[.._vocab], s.Random);
            confidence[r] = TensorPrimitives.Max(q[.._vocab]);
        }
    }

    /// <summary>The device's argmax of rows [0, rows) and its softmax probability (checked finite); valid until the next call.</summary>
    public ReadOnlySpan<int> Argmax(ComputeBuffer logits, int rows, out ReadOnlySpan<float> probabilities)
    {
        if (_argmax.Length < rows)
        {
            _argmax = new int[rows];
            _argmaxProbability = new float[rows];
        }
        _backend.ArgmaxWithProbabilityChecked(logits, rows, _vocab, _argmax, _argmaxProbability);
        probabilities = _argmaxProbability.AsSpan(0, rows);
        return _argmax.AsSpan(0, rows);
    }

    /// <summary>Rows [first, first + rows) of <paramref name="logits"/> on the host; valid until the next call.</summary>
    public ReadOnlySpan<float> Download(ComputeBuffer logits, int first, int rows)
    {
        int length = rows * _vocab;
        if (_hostLogits.Length < length) _hostLogits = new float[length];
        _backend.Download(logits, first * _vocab, _hostLogits.AsSpan(0, length));
        return _hostLogits.AsSpan(0, length);
    }
}
