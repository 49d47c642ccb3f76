using System.Diagnostics;
using Kangaroo.Backends;
using Kangaroo.Model;
using Kangaroo.Speculative;

namespace Kangaroo.Diagnostics;

/// <summary>Median times of the forward steps decoding is made of, at a given context length.</summary>
public sealed record StepTimings
{
    public required int Context { get; init; }
    /// <summary>One vanilla decode step: embed, all layers, final norm + LM head, argmax.</summary>
    public required double FullStepMs { get; init; }
    /// <summary>Verification of k tokens: layers [ℓ, L) over k rows + LM head + argmax, by k.</summary>
    public required IReadOnlyDictionary<int, double> VerifyMs { get; init; }
    /// <summary>One draft step: layers [0, ℓ) for one token, the adapter and the LM head, argmax; null without an adapter.</summary>
    public double? DraftStepMs { get; init; }
    public required int ExitLayer { get; init; }
    /// <summary>Kernels in one decode step, where the backend counts them (<see cref="IKernelLaunchCounter"/>).</summary>
    public long? LaunchesPerDecode { get; init; }
    /// <summary>Kernels in one verification of k tokens, by k, where the backend counts them.</summary>
    public IReadOnlyDictionary<int, long>? LaunchesPerVerify { get; init; }
    /// <summary>Kernels in one draft step, where the backend counts them and there is an adapter.</summary>
    public long? LaunchesPerDraft { get; init; }
}

/// <summary>
/// Times the building blocks of vanilla and Kangaroo decoding on any backend: the KV cache is filled to the context
/// length with a real prefill, then each step is repeated (writing the same positions again) and the median taken.
/// Every step ends with a device→host copy of its argmax, so the times include the work the host waits for.
/// </summary>
public static class StepBenchmark
{
    public static StepTimings Run(LlamaModel model, KangarooAdapter? adapter, int context, int exitLayer, int repetitions = 20,
        IReadOnlyList<int>? verifyRows = null)
    {
        verifyRows ??= [1, 2, 4, 8];
        int maxRows = Math.Max(64, verifyRows.Max());
        var config = model.Config;
        using var cache = model.CreateCache(context + maxRows + 1);
        using var ws = model.CreateWorkspace(maxRows);
        var random = new Random(1);
        int[] prompt = Enumerable.Range(0, context).Select(_ => random.Next(config.VocabSize)).ToArray();
        model.Prefill(prompt, cache, ws);
        var token = new int[maxRows];
        var probability = new float[maxRows];

        // The decoders' own steps: device work recorded once and replayed where the backend records (CUDA graphs).
        var counter = model.Backend as IKernelLaunchCounter;
        long? launchesPerDecode = null, launchesPerDraft = null;
        var launchesPerVerify = counter is null ? null : new SortedDictionary<int, long>();
        double full = Median(repetitions, counter, ref launchesPerDecode, () =>
        {
            model.StageRange(ws, cache, 0, context, 1, [prompt[^1]]);
            model.Run(ws, cache, ForwardPass.Full(config.NumLayers));
            model.Backend.ArgmaxWithProbability(ws.Logits, 1, config.VocabSize, token, probability);
        });

        var verify = new SortedDictionary<int, double>();
        foreach (int rows in verifyRows)
        {
            long? launches = null;
            verify[rows] = Median(repetitions, counter, ref launches, () =>
            {
                model.StageRange(ws, cache, 0, context, rows);
                model.Run(ws, cache, new ForwardPass(false, exitLayer, config.NumLayers, 0));
                model.Backend.ArgmaxWithProbability(ws.Logits, rows, config.VocabSize, token, probability);
            });
            if (launches is { } l) launchesPerVerify![rows] = l;
        }

        double? draft = null;
        if (adapter is not null)
        {
            using var adapterCache = adapter.CreateCache(context + 2);
            using var adapterWs = adapter.CreateWorkspace(2);
            using var shallowWs = model.CreateWorkspace(1);
            draft = Median(repetitions, counter, ref launchesPerDraft, () =>
            {
                model.StageRange(shallowWs, cache, 0, context, 1, [prompt[^1]]);
                model.Run(shallowWs, cache, new ForwardPass(true, 0, exitLayer, ForwardPass.NoLogits));
                model.Backend.Copy(shallowWs.Hidden, 0, adapterWs.Hidden, 0, config.HiddenSize);
                model.StageRange(adapterWs, adapterCache, 0, context, 1);
                adapter.Run(adapterWs, adapterCache, 0);
                model.Backend.ArgmaxWithProbability(adapterWs.Logits, 1, config.VocabSize, token, probability);
            });
        }
        return new StepTimings
        {
            Context = context, FullStepMs = full, VerifyMs = verify, DraftStepMs = draft, ExitLayer = exitLayer,
            LaunchesPerDecode = launchesPerDecode, LaunchesPerVerify = launchesPerVerify, LaunchesPerDraft = launchesPerDraft,
        };
    }

    // Launches are counted over the last warm-up run: a steady step, replayed where the first one recorded it (the first
    // run also runs the step plainly once, to size scratch buffers, before recording it).
    private static double Median(int repetitions, IKernelLaunchCounter? counter, ref long? launches, Action step)
    {
        for (int i = 0; i < 2; i++) step();   // warm-up: recording, caches, JIT
        long before = counter?.KernelLaunches ?? 0;
        step();
        if (counter is not null) launches = counter.KernelLaunches - before;
        var times = new double[repetitions];
        for (int i = 0; i < repetitions; i++)
        {
            long start = Stopwatch.GetTimestamp();
            step();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(times);
        return times[repetitions / 2];
    }
}
