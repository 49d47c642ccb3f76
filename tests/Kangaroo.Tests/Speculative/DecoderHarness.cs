using Kangaroo.Backends;
using Kangaroo.Backends.Cpu;
using Kangaroo.Generation;
using Kangaroo.Model;
using Kangaroo.Sampling;
using Kangaroo.Speculative;
using Kangaroo.Tests.TinyModels;
using Xunit;

namespace Kangaroo.Tests.Speculative;

/// <summary>A tiny model + adapter on disk and loaded on the CPU backend, with helpers to decode token ids directly.</summary>
internal sealed class DecoderHarness : IDisposable
{
    private readonly TestDirectory _dir = new();

    public DecoderHarness(TinyModelSpec spec, Dictionary<string, float[]>? modelWeights, Dictionary<string, float[]> adapterWeights,
        int? recordedExitLayer = null, IComputeBackend? backend = null)
    {
        Spec = spec;
        Tiny = TinyModelFactory.Write(spec, _dir.Combine("model"), modelWeights ?? TinyModelFactory.CreateWeights(spec));
        TinyAdapterFactory.Write(spec, _dir.Combine("adapter"), adapterWeights, recordedExitLayer);
        Backend = backend ?? new CpuBackend();
        Model = LlamaModel.Load(Tiny.Directory, Backend);
        Adapter = KangarooAdapter.Load(_dir.Combine("adapter"), Model);
    }

    public TinyModelSpec Spec { get; }
    public TinyModel Tiny { get; }
    public IComputeBackend Backend { get; }
    public LlamaModel Model { get; }
    public KangarooAdapter Adapter { get; }

    /// <summary>The one scheduler on this harness's model: vanilla without <paramref name="kangaroo"/>, else its chain or tree.</summary>
    public BatchScheduler Scheduler(KangarooOptions? kangaroo, int maxSequences, int contextLength, int prefillChunk = 4) =>
        Scheduler(Model, Adapter, kangaroo, maxSequences, contextLength, prefillChunk);

    public static BatchScheduler Scheduler(LlamaModel model, KangarooAdapter? adapter, KangarooOptions? kangaroo, int maxSequences,
        int contextLength, int prefillChunk = 4) =>
        new(model, maxSequences, contextLength,
            kangaroo is null ? null : KangarooProposers.Create(model, adapter!, kangaroo, maxSequences, contextLength, prefillChunk), prefillChunk);

    public int[] Vanilla(int[] prompt, int count, GenerationOptions? options = null, ulong seed = 0)
    {
        using var scheduler = Scheduler(null, 1, prompt.Length + count + 1);
        return Decode(scheduler, prompt, count, options, seed);
    }

    public (int[] Tokens, SpeculativeStats Stats) Kangaroo(int[] prompt, int count, KangarooOptions kangaroo, GenerationOptions? options = null,
        ulong seed = 0, int? contextLength = null)
    {
        using var scheduler = Scheduler(kangaroo, 1, contextLength ?? prompt.Length + count + 1);
        return (Decode(scheduler, prompt, count, options, seed), scheduler.Stats(0)!);
    }

    /// <summary>Slot 0 of <paramref name="scheduler"/> through a prompt, configured with the options and seed.</summary>
    public static int[] Decode(BatchScheduler scheduler, int[] prompt, int count, GenerationOptions? options = null, ulong seed = 0)
    {
        scheduler.Configure(0, options ?? new GenerationOptions(), new DeterministicRandom(seed));
        return Decode(new SchedulerSlot(scheduler, 0), prompt, count, scheduler.MaxTokensPerStep);
    }

    /// <summary>
    /// Decodes every prompt with a scheduler of <paramref name="maxSequences"/> slots (vanilla, or Kangaroo's chain or tree):
    /// prompt i wants counts[i] tokens and samples with seed + i; a finished prompt's slot takes the next one.
    /// </summary>
    public (int[][] Tokens, SpeculativeStats?[] Stats) Batch(int[][] prompts, int[] counts, KangarooOptions? kangaroo, int maxSequences,
        GenerationOptions? options = null, ulong seed = 0, int? contextLength = null)
    {
        int context = contextLength ?? prompts.Max(p => p.Length) + counts.Max() + 1;
        using var decoder = Scheduler(kangaroo, maxSequences, context);
        return Batch(decoder, prompts, counts, options, seed);
    }

    /// <summary><see cref="Batch(int[][], int[], KangarooOptions?, int, GenerationOptions?, ulong, int?)"/> on a given scheduler (reused across calls).</summary>
    public static (int[][] Tokens, SpeculativeStats?[] Stats) Batch(BatchScheduler decoder, int[][] prompts, int[] counts,
        GenerationOptions? options = null, ulong seed = 0)
    {
        int maxSequences = decoder.MaxSequences;
        var tokens = prompts.Select(_ => new List<int>()).ToArray();
        var stats = new SpeculativeStats?[prompts.Length];
        var promptIn = Enumerable.Repeat(-1, maxSequences).ToArray();
        int stride = decoder.MaxTokensPerStep, next = 0;
        var output = new int[maxSequences * stride];
        while (true)
        {
            for (int s = 0; s < maxSequences; s++)
            {
                if (promptIn[s] >= 0 || next >= prompts.Length) continue;
                decoder.Configure(s, options ?? new GenerationOptions(), new DeterministicRandom(seed + (ulong)next));
                decoder.Prefill(s, prompts[next]);
                promptIn[s] = next++;
            }
            int[] active = Enumerable.Range(0, maxSequences).Where(s => promptIn[s] >= 0).ToArray();
            if (active.Length == 0) break;
            int[] room = active.Select(s => Math.Min(stride, counts[promptIn[s]] - tokens[promptIn[s]].Count)).ToArray();
            var produced = new int[active.Length];
            decoder.Round(active, room, output, produced);
            for (int a = 0; a < active.Length; a++)
            {
                int s = active[a], i = promptIn[s];
                Assert.InRange(produced[a], 1, room[a]);
                tokens[i].AddRange(output.AsSpan(a * stride, produced[a]).ToArray());
                if (tokens[i].Count < counts[i]) continue;
                stats[i] = decoder.Stats(s);
                promptIn[s] = -1;
            }
        }
        return (tokens.Select(t => t.ToArray()).ToArray(), stats);
    }

    /// <summary>Runs a decoder like the generation loop does: never asks for more tokens than are still wanted.</summary>
    internal static int[] Decode(ISequenceDecoder decoder, int[] prompt, int count, int maxPerStep = 1)
    {
        decoder.Prefill(prompt);
        var tokens = new List<int>();
        var step = new int[maxPerStep];
        while (tokens.Count < count)
        {
            int produced = decoder.Next(step.AsSpan(0, Math.Min(maxPerStep, count - tokens.Count)));
            tokens.AddRange(step.AsSpan(0, produced).ToArray());
        }
        return tokens.ToArray();
    }

    public void Dispose()
    {
        Adapter.Dispose();
        Model.Dispose();
        Backend.Dispose();
        _dir.Dispose();
    }
}
