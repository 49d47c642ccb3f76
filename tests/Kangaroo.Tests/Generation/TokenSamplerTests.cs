using Kangaroo.Generation;
using Kangaroo.Sampling;
using Xunit;

namespace Kangaroo.Tests.Generation;

public class TokenSamplerTests
{
    private static readonly float[] Logits = [1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.5f];

    [Fact]
    public void ArgmaxPicksTheLowestIdAmongTies() => Assert.Equal(1, TokenSampler.Argmax(Logits));

    [Fact]
    public void DistributionIsSoftmaxOverTemperature()
    {
        var sampler = new TokenSampler(Logits.Length);
        var p = new float[Logits.Length];
        sampler.ComputeDistribution(Logits, new GenerationOptions { Temperature = 0.5f }.Sampling, p);
        double z = Logits.Sum(l => Math.Exp(l / 0.5));
        for (int i = 0; i < p.Length; i++) Assert.Equal(Math.Exp(Logits[i] / 0.5) / z, p[i], 1e-6);
    }

    [Fact]
    public void TopKKeepsTheKBestWithLowerIdsWinningTies()
    {
        var sampler = new TokenSampler(Logits.Length);
        var p = new float[Logits.Length];
        sampler.ComputeDistribution(Logits, new GenerationOptions { Temperature = 1f, TopK = 1 }.Sampling, p);
        Assert.Equal([0f, 1f, 0f, 0f, 0f, 0f], p);
        sampler.ComputeDistribution(Logits, new GenerationOptions { Temperature = 1f, TopK = 3 }.Sampling, p);
        Assert.True(p[1] > 0 && p[2] > 0 && p[3] > 0);
        Assert.Equal(0f, p[0]);
        Assert.Equal(1.0, p.Sum(), 1e-6);
    }

    [Fact]
    public void TopPKeepsTheSmallestSetReachingP()
    {
        var sampler = new TokenSampler(Logits.Length);
        var p = new float[Logits.Length];
        // Probabilities at T=1: ids 1 and 3 ≈ 0.384 each, id 2 ≈ 0.141: 0.5 needs two tokens, 0.8 three.
        sampler.ComputeDistribution(Logits, new GenerationOptions { Temperature = 1f, TopP = 0.5f }.Sampling, p);
        Assert.Equal(2, p.Count(x => x > 0));
        Assert.Equal(0.5, p[1], 1e-6);
        sampler.ComputeDistribution(Logits, new GenerationOptions { Temperature = 1f, TopP = 0.8f }.Sampling, p);
        Assert.Equal(3, p.Count(x => x > 0));
        Assert.True(p[2] > 0);
    }

    [Fact]
    public void SameSeedSameDraws()
    {
        var sampler = new TokenSampler(Logits.Length);
        var scratch = new float[Logits.Length];
        var options = new GenerationOptions { Temperature = 1f }.Sampling;
        int[] Draw(ulong seed)
        {
            var random = new DeterministicRandom(seed);
            return Enumerable.Range(0, 50).Select(_ => sampler.Sample(Logits, options, random, scratch)).ToArray();
        }
        Assert.Equal(Draw(7), Draw(7));
        Assert.NotEqual(Draw(7), Draw(8));
    }

    [Fact]
    public void SamplingFrequenciesFollowTheDistribution()
    {
        var sampler = new TokenSampler(Logits.Length);
        var p = new float[Logits.Length];
        var options = new GenerationOptions { Temperature = 1f }.Sampling;
        sampler.ComputeDistribution(Logits, options, p);
        var random = new DeterministicRandom(123);
        var counts = new int[Logits.Length];
        const int draws = 200_000;
        for (int i = 0; i < draws; i++) counts[TokenSampler.SampleFrom(p, random)]++;
        for (int i = 0; i < p.Length; i++)
        {
            double sd = Math.Sqrt(draws * p[i] * (1 - p[i]));
            Assert.InRange(counts[i], draws * p[i] - 5 * sd - 1, draws * p[i] + 5 * sd + 1);
        }
    }

    [Theory]
    [InlineData(0, 0f, 0, 1f, "max new tokens")]
    [InlineData(10, -1f, 0, 1f, "temperature")]
    [InlineData(10, float.NaN, 0, 1f, "temperature")]
    [InlineData(10, 1f, -1, 1f, "top-k")]
    [InlineData(10, 1f, 0, 0f, "top-p")]
    [InlineData(10, 1f, 0, 1.5f, "top-p")]
    public void InvalidSamplingParametersAreRejected(int maxTokens, float temperature, int topK, float topP, string named)
    {
        var options = new GenerationOptions { MaxNewTokens = maxTokens, Temperature = temperature, TopK = topK, TopP = topP };
        var e = Assert.Throws<InvalidRequestException>(options.Validate);
        Assert.Contains(named, e.Message);
    }
}
