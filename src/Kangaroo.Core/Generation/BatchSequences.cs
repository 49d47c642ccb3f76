using Kangaroo.Model;

namespace Kangaroo.Generation;

/// <summary>What a batch decoder keeps per sequence slot: settings, length, last token, the first token awaiting its round.</summary>
internal sealed class BatchSequences
{
    private readonly bool[] _firstTokenWaiting;

    public BatchSequences(int count)
    {
        Count = count;
        Options = new GenerationOptions[count];
        Random = new DeterministicRandom[count];
        for (int s = 0; s < count; s++)
        {
            Options[s] = new GenerationOptions();
            Random[s] = new DeterministicRandom(0);
        }
        Lengths = new int[count];
        Last = new int[count];
        Started = new bool[count];
        _firstTokenWaiting = new bool[count];
    }

    public int Count { get; }
    public GenerationOptions[] Options { get; }
    public DeterministicRandom[] Random { get; }
    /// <summary>Positions of the sequence in the cache (the last token is not among them).</summary>
    public int[] Lengths { get; }
    /// <summary>The newest token, the next round's input.</summary>
    public int[] Last { get; }
    public bool[] Started { get; }

    public void Configure(int sequence, GenerationOptions options, DeterministicRandom random)
    {
        BatchDecoderArguments.CheckSequence(sequence, Count);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(random);
        options.Validate();
        Options[sequence] = options;
        Random[sequence] = random;
    }

    /// <summary>A prompt is starting in the slot: its first token (in <see cref="Last"/>) goes out with its next round.</summary>
    public void Start(int sequence)
    {
        Started[sequence] = true;
        _firstTokenWaiting[sequence] = true;
        Lengths[sequence] = 0;
    }

    public bool TakeFirstToken(int sequence, out int token)
    {
        token = Last[sequence];
        if (!_firstTokenWaiting[sequence]) return false;
        _firstTokenWaiting[sequence] = false;
        return true;
    }
}
