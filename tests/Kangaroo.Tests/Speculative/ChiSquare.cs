namespace Kangaroo.Tests.Speculative;

/// <summary>Pearson's chi-square goodness-of-fit test against exact expected probabilities.</summary>
internal static class ChiSquare
{
    /// <summary>
    /// p-value of observed counts against expected probabilities. Cells expected to hold fewer than 5 draws are pooled
    /// into one cell (the usual validity condition of the chi-square approximation).
    /// </summary>
    public static (double Statistic, int DegreesOfFreedom, double PValue) Test(IReadOnlyList<long> observed, IReadOnlyList<double> probabilities)
    {
        long n = observed.Sum();
        double statistic = 0, pooledExpected = 0;
        long pooledObserved = 0;
        int cells = 0;
        for (int i = 0; i < observed.Count; i++)
        {
            double expected = probabilities[i] * n;
            if (expected < 5)
            {
                pooledExpected += expected;
                pooledObserved += observed[i];
                continue;
            }
            statistic += (observed[i] - expected) * (observed[i] - expected) / expected;
            cells++;
        }
        if (pooledExpected > 0)
        {
            statistic += (pooledObserved - pooledExpected) * (pooledObserved - pooledExpected) / Math.Max(pooledExpected, 1e-12);
            cells++;
        }
        int dof = cells - 1;
        return (statistic, dof, UpperRegularizedGamma(dof / 2.0, statistic / 2.0));
    }

    /// <summary>Q(a, x) = Γ(a, x) / Γ(a): series for x &lt; a + 1, continued fraction otherwise (Numerical Recipes §6.2).</summary>
    public static double UpperRegularizedGamma(double a, double x)
    {
        if (x <= 0) return 1;
        double logPrefix = -x + a * Math.Log(x) - LogGamma(a);
        if (x < a + 1)
        {
            double term = 1 / a, sum = term;
            for (int n = 1; n < 10_000 && Math.Abs(term) > Math.Abs(sum) * 1e-15; n++)
            {
                term *= x / (a + n);
                sum += term;
            }
            return 1 - sum * Math.Exp(logPrefix);
        }
        double b = x + 1 - a, c = 1 / 1e-300, d = 1 / b, h = d;
        for (int i = 1; i < 10_000; i++)
        {
            double an = -i * (i - a);
            b += 2;
            d = an * d + b;
            if (Math.Abs(d) < 1e-300) d = 1e-300;
            c = b + an / c;
            if (Math.Abs(c) < 1e-300) c = 1e-300;
            d = 1 / d;
            double delta = d * c;
            h *= delta;
            if (Math.Abs(delta - 1) < 1e-15) break;
        }
        return Math.Exp(logPrefix) * h;
    }

    /// <summary>Lanczos approximation (g = 7, n = 9).</summary>
    private static double LogGamma(double x)
    {
        double[] c =
        [
            0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
            12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
        ];
        if (x < 0.5) return Math.Log(Math.PI / Math.Sin(Math.PI * x)) - LogGamma(1 - x);
        x -= 1;
        double sum = c[0];
        for (int i = 1; i < 9; i++) sum += c[i] / (x + i);
        double t = x + 7.5;
        return 0.5 * Math.Log(2 * Math.PI) + (x + 0.5) * Math.Log(t) - t + Math.Log(sum);
    }
}
