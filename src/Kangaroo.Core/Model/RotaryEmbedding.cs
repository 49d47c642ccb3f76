namespace Kangaroo.Model;

/// <summary>Rotary-embedding frequencies, computed as Hugging Face does (float32 inverse frequencies).</summary>
public static class RotaryEmbedding
{
    /// <summary>
    /// inv_freq[i] = 1 / theta^(2i / headDim) for i &lt; headDim / 2, then the "llama3" rescaling when configured:
    /// wavelengths longer than original_max / low_freq_factor are divided by factor, shorter than
    /// original_max / high_freq_factor are kept, and the band between is interpolated smoothly.
    /// </summary>
    public static float[] InverseFrequencies(LlamaConfig config)
    {
        int half = config.HeadDim / 2;
        var result = new float[half];
        for (int i = 0; i < half; i++)
        {
            // HF: 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)) evaluated in float32.
            float exponent = (float)(2 * i) / config.HeadDim;
            result[i] = 1.0f / MathF.Pow((float)config.RopeTheta, exponent);
        }
        if (config.RopeScaling is { } scaling) ApplyLlama3Scaling(result, scaling);
        return result;
    }

    private static void ApplyLlama3Scaling(float[] inverseFrequencies, RopeScaling scaling)
    {
        double lowFreqWavelength = scaling.OriginalMaxPositionEmbeddings / scaling.LowFreqFactor;
        double highFreqWavelength = scaling.OriginalMaxPositionEmbeddings / scaling.HighFreqFactor;
        for (int i = 0; i < inverseFrequencies.Length; i++)
        {
            double frequency = inverseFrequencies[i];
            double wavelength = 2 * Math.PI / frequency;
            if (wavelength < highFreqWavelength) continue;
            if (wavelength > lowFreqWavelength)
            {
                inverseFrequencies[i] = (float)(frequency / scaling.Factor);
                continue;
            }
            double smooth = (scaling.OriginalMaxPositionEmbeddings / wavelength - scaling.LowFreqFactor)
                            / (scaling.HighFreqFactor - scaling.LowFreqFactor);
            inverseFrequencies[i] = (float)((1 - smooth) * frequency / scaling.Factor + smooth * frequency);
        }
    }
}
