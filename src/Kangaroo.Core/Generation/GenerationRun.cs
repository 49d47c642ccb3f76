using System.Diagnostics;
using System.Text;
using Kangaroo.Tokenization;

namespace Kangaroo.Generation;

/// <summary>
/// One generation, stepped by its caller: runs the decoder, applies the stop conditions (end of sequence, max tokens,
/// stop strings, full context, cancellation), turns tokens into text pieces that never split a character or reveal the
/// start of a stop string, and times prefill and decode. Backend- and decoder-independent.
/// </summary>
public sealed class GenerationRun
{
    private readonly ISequenceDecoder _decoder;
    private readonly StreamingDetokenizer _detokenizer;
    private readonly int[] _promptTokens;
    private readonly GenerationOptions _options;
    private readonly IReadOnlySet<int> _endOfSequence;
    private readonly int _tokenBudget;
    private readonly CancellationToken _cancellation;
    private readonly List<int> _generated = [];
    private readonly StringBuilder _text = new();
    private readonly int[] _stepTokens;
    private readonly Stopwatch _clock = new();
    private TimeSpan _prefill;
    private int _emitted;
    private bool _started;
    private StopReason? _stopReason;
    private int _textEnd = -1;

    /// <param name="contextLength">Positions the decoder's cache holds; generation stops before overflowing it.</param>
    internal GenerationRun(ISequenceDecoder decoder, TextTokenizer tokenizer, int[] promptTokens, GenerationOptions options,
        IReadOnlySet<int> endOfSequenceIds, int contextLength, CancellationToken cancellation = default)
    {
        options.Validate();
        if (promptTokens.Length == 0) throw new InvalidRequestException("the prompt is empty (no tokens); give some text");
        if (promptTokens.Length >= contextLength)
            throw new InvalidRequestException($"the prompt has {promptTokens.Length} tokens but the context holds {contextLength}: leave room for at least one new token");
        _decoder = decoder;
        _detokenizer = tokenizer.CreateStreamingDecoder();
        _promptTokens = promptTokens;
        _options = options;
        _endOfSequence = endOfSequenceIds;
        // After n tokens the cache holds ≤ prompt + n − 1 positions (the scheduler's contract).
        _tokenBudget = Math.Min(options.MaxNewTokens, contextLength - promptTokens.Length + 1);
        _cancellation = cancellation;
        _stepTokens = new int[Math.Max(1, decoder.MaxTokensPerStep)];
    }

    /// <summary>Turns a decoder's <see cref="NonFiniteLogitsException"/> into one that names its cause (the model's weights searched).</summary>
    internal Func<NonFiniteLogitsException, NonFiniteLogitsException>? ExplainNonFinite { get; init; }

    public bool IsFinished => _stopReason is not null;


    /// <summary>Most tokens the next <see cref="Step"/> asks its decoder for (a batch gives each sequence this much room).</summary>
    internal int NextStepRoom => Math.Min(_stepTokens.Length, _tokenBudget - _generated.Count);

    /// <summary>Tokens generated so far.</summary>
    internal int GeneratedCount => _generated.Count;

    /// <summary>Whether the prompt has been processed (the first <see cref="Step"/> does it).</summary>
    internal bool Started => _started;

    /// <summary>
    /// Runs one decoder step (the first call also processes the prompt). Returns false once finished; otherwise
    /// <paramref name="piece"/> is the text that became final in this step (may be empty).
    /// </summary>
    public bool Step(out string piece)
    {
        try
        {
            return StepDecoder(out piece);
        }
        catch (NonFiniteLogitsException e) when (ExplainNonFinite is not null && !e.Diagnosed)
        {
            throw ExplainNonFinite(e);
        }
    }

    private bool StepDecoder(out string piece)
    {
        piece = "";
        if (_stopReason is not null) return false;
        if (!_started)
        {
            _started = true;
            _clock.Start();
            _decoder.Prefill(_promptTokens);
            _prefill = _clock.Elapsed;
        }
        if (_cancellation.IsCancellationRequested)
        {
            piece = Finish(StopReason.Cancelled);
            return true;
        }

        int room = NextStepRoom;
        int produced = _decoder.Next(_stepTokens.AsSpan(0, room));
        for (int i = 0; i < produced; i++)
        {
            int token = _stepTokens[i];
            if (_options.StopAtEndOfSequence && _endOfSequence.Contains(token))
            {
                piece = Finish(StopReason.EndOfSequence);
                return true;
            }
            _generated.Add(token);
            _text.Append(_detokenizer.Push(token));
            if (FindStopString() is int stopAt)
            {
                _textEnd = stopAt;
                piece = Finish(StopReason.StopString);
                return true;
            }
        }
        if (_generated.Count >= _tokenBudget)
        {
            piece = Finish(_generated.Count >= _options.MaxNewTokens ? StopReason.MaxTokens : StopReason.ContextFull);
            return true;
        }
        piece = TakeSafeText();
        return true;
    }

    /// <summary>The result; available once <see cref="IsFinished"/>.</summary>
    public GenerationResult Result
    {
        get
        {
            if (_stopReason is not { } reason) throw new InvalidOperationException("the generation has not finished");
            var timings = new GenerationTimings(_prefill, _clock.Elapsed - _prefill, _promptTokens.Length, _generated.Count);
            return new GenerationResult(_text.ToString(0, _emitted), _promptTokens, _generated.ToArray(), reason, timings,
                _decoder.SpeculativeStats);
        }
    }

    /// <summary>Runs to the end and returns the result.</summary>
    public GenerationResult RunToEnd()
    {
        while (Step(out _)) { }
        return Result;
    }

    private string Finish(StopReason reason)
    {
        _clock.Stop();
        _stopReason = reason;
        if (reason != StopReason.StopString)
        {
            _text.Append(_detokenizer.Flush());
            // A stop string may have been completed by the flushed bytes.
            if (FindStopString() is int stopAt) _textEnd = stopAt;
        }
        int end = _textEnd >= 0 ? _textEnd : _text.Length;
        string rest = _text.ToString(_emitted, end - _emitted);
        _emitted = end;
        return rest;
    }

    /// <summary>Index where the first stop string starts in the not-yet-emitted text, if any.</summary>
    private int? FindStopString()
    {
        if (_options.StopStrings.Count == 0) return null;
        // Emitted text never holds the start of a stop string (TakeSafeText holds such tails back), so search from there.
        string pending = _text.ToString(_emitted, _text.Length - _emitted);
        int best = -1;
        foreach (string stop in _options.StopStrings)
        {
            int at = pending.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (best < 0 || at < best)) best = at;
        }
        return best < 0 ? null : _emitted + best;
    }

    /// <summary>Emits pending text except a tail that could still grow into a stop string.</summary>
    private string TakeSafeText()
    {
        int holdBack = 0;
        int pendingLength = _text.Length - _emitted;
        foreach (string stop in _options.StopStrings)
        {
            for (int k = Math.Min(stop.Length - 1, pendingLength); k > holdBack; k--)
            {
                if (EndsWith(stop.AsSpan(0, k))) { holdBack = k; break; }
            }
        }
        int end = _text.Length - holdBack;
        // Never end a piece between the halves of a surrogate pair.
        if (end > _emitted && char.IsHighSurrogate(_text[end - 1])) end--;
        if (end <= _emitted) return "";
        string piece = _text.ToString(_emitted, end - _emitted);
        _emitted = end;
        return piece;
    }

    private bool EndsWith(ReadOnlySpan<char> suffix)
    {
        int start = _text.Length - suffix.Length;
        for (int i = 0; i < suffix.Length; i++)
        {
            if (_text[start + i] != suffix[i]) return false;
        }
        return true;
    }
}
