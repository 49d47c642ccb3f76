namespace Kangaroo.Tests.Backends;

/// <summary>
/// Plain-loop references for the backend ops, accumulating in double. Deliberately naive: they are the
/// specification every backend's conformance tests are checked against.
/// </summary>
internal static class ScalarOps
{
    /// <summary>output[r, o] = Σ_i x[r, i] · w[o, i].</summary>
    public static double[] MatMul(float[] x, float[] w, int rows, int columns, int outFeatures)
    {
        var output = new double[rows * outFeatures];
        for (int r = 0; r < rows; r++)
        {
            for (int o = 0; o < outFeatures; o++)
            {
                double sum = 0;
                for (int i = 0; i < columns; i++)
                    sum += (double)x[r * columns + i] * w[o * columns + i];
                output[r * outFeatures + o] = sum;
            }
        }
        return output;
    }

    public static double[] RmsNorm(float[] x, float[] gamma, float eps, int rows, int width)
    {
        var output = new double[rows * width];
        for (int r = 0; r < rows; r++)
        {
            double sumOfSquares = 0;
            for (int i = 0; i < width; i++)
                sumOfSquares += (double)x[r * width + i] * x[r * width + i];
            double inverseRms = 1 / Math.Sqrt(sumOfSquares / width + eps);
            for (int i = 0; i < width; i++)
                output[r * width + i] = x[r * width + i] * inverseRms * gamma[i];
        }
        return output;
    }

    /// <summary>HF rotate_half; the angle is the F32 product position · invFreq, as Hugging Face computes it.</summary>
    public static double[] Rope(float[] x, int[] positions, float[] inverseFrequencies, int rows, int heads, int headDim)
    {
        int half = headDim / 2;
        var output = new double[rows * heads * headDim];
        for (int r = 0; r < rows; r++)
        {
            for (int h = 0; h < heads; h++)
            {
                int offset = (r * heads + h) * headDim;
                for (int i = 0; i < half; i++)
                {
                    float angle = (float)positions[r] * inverseFrequencies[i];
                    double cos = Math.Cos(angle), sin = Math.Sin(angle);
                    double a = x[offset + i], b = x[offset + half + i];
                    output[offset + i] = a * cos - b * sin;
                    output[offset + half + i] = b * cos + a * sin;
                }
            }
        }
        return output;
    }

    /// <summary>
    /// Causal GQA attention over one layer's cache, <paramref name="keys"/>/<paramref name="values"/> laid out
    /// <c>[slot][kvWidth]</c>; query row r attends to slots [0, positions[r]].
    /// </summary>
    public static double[] Attention(float[] queries, float[] keys, float[] values, int[] positions,
        int rows, int heads, int kvHeads, int headDim)
    {
        int kvWidth = kvHeads * headDim;
        int group = heads / kvHeads;
        double scale = 1 / Math.Sqrt(headDim);
        var output = new double[rows * heads * headDim];
        for (int r = 0; r < rows; r++)
        {
            int keyCount = positions[r] + 1;
            for (int h = 0; h < heads; h++)
            {
                int queryOffset = (r * heads + h) * headDim;
                int kvOffset = h / group * headDim;
                var scores = new double[keyCount];
                double max = double.NegativeInfinity;
                for (int t = 0; t < keyCount; t++)
                {
                    double dot = 0;
                    for (int i = 0; i < headDim; i++)
                        dot += (double)queries[queryOffset + i] * keys[t * kvWidth + kvOffset + i];
                    scores[t] = dot * scale;
                    max = Math.Max(max, scores[t]);
                }
                double sum = 0;
                for (int t = 0; t < keyCount; t++)
                {
                    scores[t] = Math.Exp(scores[t] - max);
                    sum += scores[t];
                }
                for (int i = 0; i < headDim; i++)
                {
                    double value = 0;
                    for (int t = 0; t < keyCount; t++)
                        value += scores[t] / sum * values[t * kvWidth + kvOffset + i];
                    output[queryOffset + i] = value;
                }
            }
        }
        return output;
    }

    public static double[] SiluMul(float[] gate, float[] up, int count)
    {
        var output = new double[count];
        for (int i = 0; i < count; i++)
            output[i] = gate[i] / (1 + Math.Exp(-(double)gate[i])) * up[i];
        return output;
    }

    /// <summary>Lowest index of the maximum and its softmax probability, per row.</summary>
    public static (int Index, double Probability)[] ArgmaxWithProbability(float[] logits, int rows, int vocab)
    {
        var result = new (int, double)[rows];
        for (int r = 0; r < rows; r++)
        {
            int best = 0;
            for (int i = 1; i < vocab; i++)
            {
                if (logits[r * vocab + i] > logits[r * vocab + best])
                    best = i;
            }
            double max = logits[r * vocab + best];
            double sum = 0;
            for (int i = 0; i < vocab; i++)
                sum += Math.Exp(logits[r * vocab + i] - max);
            result[r] = (best, 1 / sum);
        }
        return result;
    }
}
