using Kangaroo.Sampling;
using Kangaroo.Tokenization;

namespace Kangaroo.Generation;

/// <summary>
/// Many generations on one <see cref="BatchScheduler"/>: each prompt takes a free sequence slot (a finished sequence frees
/// its slot for the next prompt), and every round advances all running sequences together. Each sequence runs in its own
/// <see cref="GenerationRun"/>, so stop conditions, text and timings are exactly those of a single generation.
/// </summary>
internal static class BatchGeneration
{
    /// <param name="randomFor">The sampler's generator of prompt i.</param>
    public static GenerationResult[] Run(BatchScheduler decoder, TextTokenizer tokenizer, IReadOnlyList<int[]> prompts, GenerationOptions options,
        Func<int, DeterministicRandom> randomFor, IReadOnlySet<int> endOfSequence, CancellationToken cancellation)
    {
        int slots = decoder.MaxSequences, stride = decoder.MaxTokensPerStep;
        var results = new GenerationResult[prompts.Count];
        var runs = new GenerationRun?[slots];
        var promptOf = new int[slots];
        var members = new SchedulerSlot[slots];
        for (int s = 0; s < slots; s++) members[s] = new SchedulerSlot(decoder, s);
        var sequences = new int[slots];
        var room = new int[slots];
        var counts = new int[slots];
        var output = new int[slots * stride];
        int next = 0;
        while (true)
        {
            for (int s = 0; s < slots; s++)
            {
                // A new prompt's first step processes it and hands out its first token (no other sequence waits on a pass).
                while (runs[s] is null && next < prompts.Count)
                {
                    int i = next++;
                    if (cancellation.IsCancellationRequested)
                    {
                        // Cancelled before its turn: no prompt pass for a result that would be empty anyway.
                        results[i] = GenerationResult.CancelledBeforeStart(prompts[i]);
                        continue;
                    }
                    decoder.Configure(s, options, randomFor(i));
                    var run = new GenerationRun(members[s], tokenizer, prompts[i], options, endOfSequence, decoder.ContextLength, cancellation);
                    run.Step(out _);
                    if (run.IsFinished) results[i] = run.Result;
                    else (runs[s], promptOf[s]) = (run, i);
                }
            }
            int active = 0;
            for (int s = 0; s < slots; s++)
            {
                if (runs[s] is not { } run) continue;
                sequences[active] = s;
                room[active++] = run.NextStepRoom;
            }
            if (active == 0) return results;

            decoder.Round(sequences.AsSpan(0, active), room.AsSpan(0, active), output, counts.AsSpan(0, active));
            for (int a = 0; a < active; a++)
            {
                int s = sequences[a];
                var run = runs[s]!;
                members[s].Deliver(output.AsSpan(a * stride, counts[a]));
                run.Step(out _);
                if (!run.IsFinished) continue;
                results[promptOf[s]] = run.Result;   // before the slot (and its statistics) serves another prompt
                runs[s] = null;
            }
        }
    }
}
