using Kangaroo.Cuda;

using static Kangaroo.Backends.BackendArguments;
using static Kangaroo.Backends.Cuda.Launchers.KernelParameter;

namespace Kangaroo.Backends.Cuda.Launchers;

/// <summary>
/// sampling.cu: argmax and top-k over rows of logits on the device, one block per row; only the few ids and probabilities
/// per row cross to the host, never the logits.
/// </summary>
internal sealed class SelectionLauncher(KernelQueue queue, KernelDefines defines) : IDisposable
{
    /// <summary>Threads per block of argmax_probability and top_k_probability (one block per row of logits).</summary>
    public static readonly KernelDefine Threads = new("ARGMAX_THREADS", 256);

    public static IReadOnlyList<KernelDefine> Defines => [Threads];

    // logits, vocabulary, (k,) then the ids and probabilities out.
    private static readonly KernelSignature ArgmaxKernel = new(["argmax_probability"], Pointer, Int, Pointer, Pointer);
    private static readonly KernelSignature TopKKernel = new(["top_k_probability"], Pointer, Int, Int, Pointer, Pointer);

    public static IReadOnlyList<KernelSignature> Signatures => [ArgmaxKernel, TopKKernel];

    private readonly uint _threads = (uint)defines[Threads];

    private DeviceBuffer? _selectedTokens, _selectedProbabilities;   // results on their way to the host (guarded by the gate)

    public void TopKWithProbabilities(CudaActivations logits, int rows, int vocab, int k, Span<int> tokens, Span<float> probabilities)
    {
        CheckTopK(logits, rows, vocab, k, tokens, probabilities);
        SelectOnDevice(TopKKernel, logits, rows, vocab, k, tokens, probabilities);
    }

    public void ArgmaxWithProbability(CudaActivations l, int rows, int vocab, Span<int> tokens, Span<float> probabilities)
    {
        CheckArgmax(l, rows, vocab, tokens, probabilities);
        SelectOnDevice(ArgmaxKernel, l, rows, vocab, 1, tokens, probabilities);
    }

    /// <summary>
    /// Runs the selection kernel of <paramref name="signature"/> (one block per row of logits, <paramref name="perRow"/> ids and probabilities
    /// out per row) and copies its few bytes back: what crosses to the host instead of the logits.
    /// </summary>
    private void SelectOnDevice(KernelSignature signature, CudaActivations logits, int rows, int vocab, int perRow, Span<int> tokens, Span<float> probabilities)
    {
        if (rows == 0) return;
        int count = rows * perRow;
        lock (queue.Gate)
        {
            if (_selectedTokens is null || _selectedTokens.ByteLength < count * sizeof(int))
            {
                _selectedTokens?.Dispose();
                _selectedProbabilities?.Dispose();
                int capacity = Math.Max(count, 256);
                _selectedTokens = queue.Allocate(capacity * sizeof(int), "selection results");
                _selectedProbabilities = queue.Allocate(capacity * sizeof(float), "selection results");
            }
            var args = new LaunchArguments(signature);
            args.Pointer(logits.Memory); args.Int(vocab);
            if (signature == TopKKernel) args.Int(perRow);
            args.Pointer(_selectedTokens); args.Pointer(_selectedProbabilities!);
            queue.Launch(queue.Kernels[signature.Kernels[0]], (uint)rows, _threads, args);
            queue.Stream.Synchronize();
            _selectedTokens.CopyTo(tokens[..count]);
            _selectedProbabilities!.CopyTo(probabilities[..count]);
        }
    }

    public void Dispose()
    {
        _selectedTokens?.Dispose();
        _selectedProbabilities?.Dispose();
    }
}
