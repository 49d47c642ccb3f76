using System.Numerics.Tensors;
using Kangaroo.Model;

namespace Kangaroo.Embeddings;

/// <summary>
/// Text embeddings from a causal language model: each text's token states after the last layer and the final RMSNorm
/// (what the LM head reads), mean-pooled over the text's tokens and L2-normalised. Mean pooling over every position is
/// the plain choice for a model not trained for embeddings: a causal model's last state alone sees the whole text but
/// carries mostly next-token information. Texts share forward passes: rows of several texts go through one pass of the
/// batched forward (each in its own cache region), so the weights are read once for many tokens. Row invariance makes a
/// text's embedding independent of the texts it was batched with.
/// </summary>
public sealed class TextEmbedder : IDisposable
{
    private readonly LlamaModel _model;
    private readonly KvCache _cache;
    private readonly ForwardWorkspace _workspace;
    private readonly int _maxTexts, _hidden;
    private readonly float[] _rows;
    private readonly int[] _textOfRow;

    /// <param name="maxTexts">Texts that share passes.</param>
    /// <param name="maxTokens">Longest text, in tokens.</param>
    /// <param name="passRows">Rows per forward pass.</param>
    public TextEmbedder(LlamaModel model, int maxTexts, int maxTokens, int passRows = 64)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTexts, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(passRows, 1);
        _model = model;
        _maxTexts = maxTexts;
        _hidden = model.Config.HiddenSize;
        _cache = model.CreateCache(maxTokens, maxTexts);
        _workspace = model.CreateWorkspace(passRows);
        _rows = new float[passRows * _hidden];
        _textOfRow = new int[passRows];
        // Pass sizes vary with the texts: recording each would cost more than it saves.
        _workspace.UseRecordedPasses = false;
    }

    /// <summary>Longest text, in tokens.</summary>
    public int MaxTokens => _cache.Capacity;

    /// <summary>Embeddings (length hidden size, unit L2 norm) of at most maxTexts token sequences, each non-empty and within <see cref="MaxTokens"/>.</summary>
    public float[][] Embed(IReadOnlyList<int[]> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (texts.Count > _maxTexts) throw new ArgumentException($"{texts.Count} texts; this embedder takes up to {_maxTexts} at once", nameof(texts));
        var sums = new double[texts.Count][];
        for (int t = 0; t < texts.Count; t++)
        {
            int length = texts[t]?.Length ?? 0;
            if (length == 0) throw new InvalidRequestException($"text {t} is empty (no tokens)");
            if (length > MaxTokens) throw new InvalidRequestException($"text {t} has {length} tokens; the embedder holds {MaxTokens}");
            sums[t] = new double[_hidden];
        }

        // Rows of every text, in order, in passes of up to the workspace's rows: a pass may hold the end of one text and
        // the start of the next (a row attends to its own text's earlier positions, which earlier passes stored).
        var rows = _workspace.Rows;
        int text = 0, position = 0;
        while (text < texts.Count)
        {
            rows.Reset(withTokens: true);
            while (rows.Count < rows.MaxRows && text < texts.Count)
            {
                _textOfRow[rows.Count] = text;
                rows.Add(text, position, text * _cache.Capacity + position, texts[text][position]);
                if (++position == texts[text].Length) (text, position) = (text + 1, 0);
            }
            int count = rows.Count;
            _model.Stage(_workspace, _cache, rows);
            _model.Run(_workspace, _cache, new ForwardPass(true, 0, _model.Config.NumLayers, ForwardPass.NoLogits));
            // The last layer's fused add normalised the residual with the final norm: the LM head's input.
            _model.Backend.Download(_workspace.Normed, 0, _rows.AsSpan(0, count * _hidden));
            for (int r = 0; r < count; r++)
            {
                var sum = sums[_textOfRow[r]];
                var state = _rows.AsSpan(r * _hidden, _hidden);
                for (int i = 0; i < _hidden; i++) sum[i] += state[i];
            }
        }

        var embeddings = new float[texts.Count][];
        for (int t = 0; t < texts.Count; t++)
        {
            var mean = new float[_hidden];
            for (int i = 0; i < _hidden; i++) mean[i] = (float)(sums[t][i] / texts[t].Length);
            float norm = TensorPrimitives.Norm(mean);
            if (!float.IsFinite(norm)) throw NonFinite(t);
            if (norm == 0) throw new InvalidOperationException($"text {t}: the pooled hidden state is all zeros, so it has no direction");
            TensorPrimitives.Divide(mean, norm, mean);
            embeddings[t] = mean;
        }
        return embeddings;
    }

    private static NonFiniteLogitsException NonFinite(int text) =>
        new($"text {text}: the forward pass produced non-finite hidden states (NaN or infinity), so no embedding can be made of them");

    public void Dispose()
    {
        _cache.Dispose();
        _workspace.Dispose();
    }
}
