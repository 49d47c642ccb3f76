using Kangaroo.Generation;

namespace Kangaroo;

/// <summary>
/// Text pieces of a generation as they are produced (<c>await foreach</c>); afterwards <see cref="Result"/> carries token
/// ids, stop reason and timings. Steps run on the thread pool, off the caller's context. Enumerate once.
/// </summary>
public sealed class GenerationStream : IAsyncEnumerable<string>
{
    private readonly InferenceSession _session;
    private readonly string _prompt;
    private readonly GenerationOptions? _options;
    private readonly bool _ownsSession;
    private GenerationResult? _result;
    private int _enumerated;

    internal GenerationStream(InferenceSession session, string prompt, GenerationOptions? options, bool ownsSession)
    {
        _session = session;
        _prompt = prompt;
        _options = options;
        _ownsSession = ownsSession;
    }

    /// <summary>The finished generation's result; throws before the stream has been enumerated to the end.</summary>
    public GenerationResult Result => _result ?? throw new InvalidOperationException("enumerate the stream to its end first");

    public async IAsyncEnumerator<string> GetAsyncEnumerator(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _enumerated, 1) != 0) throw new InvalidOperationException("a generation stream can be enumerated once");
        try
        {
            await Task.Yield();
            var run = _session.Start(_prompt, _options, cancellationToken);
            while (true)
            {
                string piece = "";
                bool more = await Task.Run(() => run.Step(out piece), CancellationToken.None).ConfigureAwait(false);
                if (!more) break;
                if (piece.Length > 0) yield return piece;
            }
            _result = run.Result;
        }
        finally
        {
            if (_ownsSession) _session.Dispose();
        }
    }
}
