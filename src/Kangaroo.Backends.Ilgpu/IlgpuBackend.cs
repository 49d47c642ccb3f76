using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using Kangaroo.Weights;

using static Kangaroo.Backends.BackendArguments;

namespace Kangaroo.Backends.Ilgpu;

/// <summary>
/// <see cref="IComputeBackend"/> on ILGPU: kernels written in C# (<see cref="IlgpuKernels"/>) and compiled for a CUDA,
/// OpenCL or CPU accelerator. Weights are copied to the device in their stored dtype; activations and the KV cache are F32.
/// </summary>
/// <remarks>
/// Every op runs under one lock: ILGPU kernels queue on the accelerator's default stream, and the scratch buffers
/// (attention scores, argmax results) are shared, so concurrent sessions are serialized rather than interleaved.
/// Kernels are compiled on first use, so a backend that only runs part of the model compiles only what it needs.
/// </remarks>
public sealed class IlgpuBackend : IComputeBackend
{
    private readonly object _gate = new();
    private readonly Context _context;
    private readonly Accelerator _accelerator;
    private bool _disposed;

    private MemoryBuffer1D<float, Stride1D.Dense>? _attentionScores;
    private MemoryBuffer1D<int, Stride1D.Dense>? _attentionBases;
    private int[] _firstSlots = [];   // host side of _attentionBases, reused (guarded by _gate)
    private Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<int>, int>? _copyRows;
    private MemoryBuffer1D<int, Stride1D.Dense>? _argmaxTokens;
    private MemoryBuffer1D<float, Stride1D.Dense>? _argmaxProbabilities;

    private Action<Index1D, ArrayView<int>, ArrayView<float>, ArrayView<ushort>, int, int, ArrayView<float>>? _embed;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, float, int, ArrayView<float>>? _rmsNorm;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, int>? _addBias;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, float, int, ArrayView<float>>? _addRmsNorm;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, int, int, ArrayView<float>>? _matMul;
    private Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int>? _rope;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, long, ArrayView<float>, ArrayView<float>>? _storeKv;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, int, ArrayView<int>, long, int, int, int, int, int, float, ArrayView<float>>? _attentionScoresKernel;
    private Action<Index1D, ArrayView<int>, int, int, int, ArrayView<float>>? _attentionSoftmax;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, int, ArrayView<int>, long, int, int, int, int, int, ArrayView<float>>? _attentionValues;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>? _siluMul;
    private Action<Index1D, ArrayView<float>, int, ArrayView<int>, ArrayView<float>>? _argmax;

    /// <param name="kind">The accelerator family.</param>
    /// <param name="deviceIndex">Which device of that family (see <see cref="Describe"/>).</param>
    /// <param name="cpuMode">
    /// For the CPU accelerator only. <see cref="CPUAcceleratorMode.Auto"/> (parallel unless a debugger is attached) is
    /// the default: measured on the Kangaroo greedy suite, <see cref="CPUAcceleratorMode.Sequential"/> was 2.6× slower.
    /// </param>
    public IlgpuBackend(IlgpuAcceleratorKind kind = IlgpuAcceleratorKind.Cpu, int deviceIndex = 0,
        CPUAcceleratorMode cpuMode = CPUAcceleratorMode.Auto)
    {
        _context = IlgpuDevices.CreateContext(kind);
        try
        {
            IReadOnlyList<Device> devices = IlgpuDevices.DevicesOf(_context, kind);
            if ((uint)deviceIndex >= (uint)devices.Count)
                throw new ArgumentOutOfRangeException(nameof(deviceIndex), deviceIndex, $"ILGPU sees {devices.Count} {kind} device(s)");
            Device device = devices[deviceIndex];
            _accelerator = device is CPUDevice cpu ? cpu.CreateCPUAccelerator(_context, cpuMode) : device.CreateAccelerator(_context);
            Kind = kind;
            DeviceName = $"{IlgpuDevices.DescribeDevice(device)}, ILGPU {kind}";
        }
        catch
        {
            _context.Dispose();
            throw;
        }
    }

    /// <summary>The fastest family with a usable device: CUDA, then OpenCL, then the CPU accelerator.</summary>
    public static IlgpuBackend CreateBest()
    {
        foreach (IlgpuAcceleratorKind kind in (ReadOnlySpan<IlgpuAcceleratorKind>)[IlgpuAcceleratorKind.Cuda, IlgpuAcceleratorKind.OpenCL])
        {
            if (!Available(kind, out _))
                continue;
            try
            {
                return new IlgpuBackend(kind);
            }
            catch (Exception exception) when (exception is not OutOfMemoryException)
            {
                // Listed but unusable (e.g. a driver that fails to create a context): fall through to the next family.
            }
        }
        return new IlgpuBackend(IlgpuAcceleratorKind.Cpu);
    }

    /// <summary>Every accelerator family and its devices, or why it has none. Never throws.</summary>
    public static IReadOnlyList<IlgpuDeviceInfo> Describe() =>
        [.. IlgpuDevices.Describe(IlgpuAcceleratorKind.Cuda), .. IlgpuDevices.Describe(IlgpuAcceleratorKind.OpenCL), .. IlgpuDevices.Describe(IlgpuAcceleratorKind.Cpu)];

    /// <summary>Whether <paramref name="kind"/> has a usable device here; if not, <paramref name="reason"/> says why. Never throws.</summary>
    public static bool Available(IlgpuAcceleratorKind kind, out string? reason)
    {
        IlgpuDeviceInfo first = IlgpuDevices.Describe(kind)[0];
        reason = first.Available ? null : first.Reason;
        return first.Available;
    }

    public string Name => "ilgpu";

    public string DeviceName { get; }

    public IlgpuAcceleratorKind Kind { get; }

    // ---------------------------------------------------------------- resources

    public unsafe WeightTensor LoadWeight(TensorView source, int rows, int columns)
    {
        CheckWeightView(source, rows, columns);
        lock (_gate)
        {
            ThrowIfDisposed();
            MemoryBuffer1D<byte, Stride1D.Dense> bytes = AllocateWeightBytes(source.ByteLength);
            bytes.View.SubView(0, source.ByteLength).CopyFromCPU(ref Unsafe.AsRef<byte>(source.Pointer), source.ByteLength);
            return new IlgpuWeightTensor(this, source.Name, source.DType, rows, columns, bytes);
        }
    }

    public WeightTensor LoadWeight(string name, ReadOnlySpan<float> values, int rows, int columns)
    {
        CheckWeightValues(name, values.Length, rows, columns);
        lock (_gate)
        {
            ThrowIfDisposed();
            ReadOnlySpan<byte> source = MemoryMarshal.AsBytes(values);
            MemoryBuffer1D<byte, Stride1D.Dense> bytes = AllocateWeightBytes(source.Length);
            ((ArrayView<byte>)bytes.View).SubView(0, source.Length).CopyFromCPU(source);
            return new IlgpuWeightTensor(this, name, DType.F32, rows, columns, bytes);
        }
    }

    /// <summary>Rounded up to whole F32 words, so the F32 and 16-bit views of any weight cover all of it.</summary>
    private MemoryBuffer1D<byte, Stride1D.Dense> AllocateWeightBytes(long byteLength)
    {
        MemoryBuffer1D<byte, Stride1D.Dense> bytes = _accelerator.Allocate1D<byte>((byteLength + 3) & ~3L);
        bytes.MemSetToZero();
        return bytes;
    }

    public ComputeBuffer Allocate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        lock (_gate)
        {
            ThrowIfDisposed();
            return new IlgpuComputeBuffer(this, _accelerator, length);
        }
    }

    public IndexBuffer AllocateIndices(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        lock (_gate)
        {
            ThrowIfDisposed();
            return new IlgpuIndexBuffer(this, _accelerator, length);
        }
    }

    public KvCacheStorage AllocateKvCache(int layers, int capacity, int kvWidth, int sequences = 1)
    {
        CheckKvCacheShape(layers, capacity, kvWidth, sequences);
        lock (_gate)
        {
            ThrowIfDisposed();
            return new IlgpuKvCache(this, _accelerator, layers, capacity, kvWidth, sequences);
        }
    }

    public void Upload(ReadOnlySpan<float> source, ComputeBuffer destination, int destinationOffset = 0)
    {
        IlgpuComputeBuffer target = Own(destination, nameof(destination));
        CheckRange(destinationOffset, source.Length, target.Length, nameof(destinationOffset));
        if (source.IsEmpty)
            return;
        lock (_gate)
        {
            ThrowIfDisposed();
            target.View.SubView(destinationOffset, source.Length).CopyFromCPU(source);
        }
    }

    public void Upload(ReadOnlySpan<int> source, IndexBuffer destination)
    {
        IlgpuIndexBuffer target = Own(destination, nameof(destination));
        CheckIndexUpload(source.Length, target.Length);
        if (source.IsEmpty)
            return;
        lock (_gate)
        {
            ThrowIfDisposed();
            source.CopyTo(target.HostShadow);
            target.View.SubView(0, source.Length).CopyFromCPU(source);
        }
    }

    public void Download(ComputeBuffer source, int sourceOffset, Span<float> destination)
    {
        IlgpuComputeBuffer from = Own(source, nameof(source));
        CheckRange(sourceOffset, destination.Length, from.Length, nameof(sourceOffset));
        if (destination.IsEmpty)
            return;
        lock (_gate)
        {
            ThrowIfDisposed();
            _accelerator.Synchronize();
            from.View.SubView(sourceOffset, destination.Length).CopyToCPU(destination);
        }
    }

    public void CopyRows(ComputeBuffer source, IndexBuffer sourceRows, ComputeBuffer destination, IndexBuffer destinationRows, int rows, int width)
    {
        IlgpuComputeBuffer from = Own(source, nameof(source));
        IlgpuComputeBuffer to = Own(destination, nameof(destination));
        IlgpuIndexBuffer read = Own(sourceRows, nameof(sourceRows)), write = Own(destinationRows, nameof(destinationRows));
        CheckRowCopies(read.HostShadow, write.HostShadow, rows, width, from.Length, to.Length, ReferenceEquals(from, to));
        if (rows == 0)
            return;
        lock (_gate)
        {
            ThrowIfDisposed();
            _copyRows ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<int>, int>(IlgpuKernels.CopyRows);
            _copyRows(checked(rows * width), from.View, read.View, to.View, write.View, width);
        }
    }

    public void Copy(ComputeBuffer source, int sourceOffset, ComputeBuffer destination, int destinationOffset, int count)
    {
        IlgpuComputeBuffer from = Own(source, nameof(source));
        IlgpuComputeBuffer to = Own(destination, nameof(destination));
        CheckCopy(sourceOffset, from.Length, destinationOffset, to.Length, count);
        if (count == 0 || (ReferenceEquals(from, to) && sourceOffset == destinationOffset))
            return;
        lock (_gate)
        {
            ThrowIfDisposed();
            ArrayView1D<float, Stride1D.Dense> sourceRange = from.View.SubView(sourceOffset, count);
            ArrayView1D<float, Stride1D.Dense> destinationRange = to.View.SubView(destinationOffset, count);
            bool overlapping = ReferenceEquals(from, to) && Math.Abs(sourceOffset - destinationOffset) < count;
            if (overlapping)
            {
                // A device copy is not specified for overlapping ranges; staging gives memmove semantics.
                using MemoryBuffer1D<float, Stride1D.Dense> staging = _accelerator.Allocate1D<float>(count);
                sourceRange.CopyTo(staging.View);
                staging.View.CopyTo(destinationRange);
                _accelerator.Synchronize();
            }
            else
            {
                sourceRange.CopyTo(destinationRange);
            }
        }
    }

    // ---------------------------------------------------------------- ops

    public void Embed(WeightTensor table, IndexBuffer tokens, ComputeBuffer output, int rows)
    {
        IlgpuWeightTensor weights = Own(table, nameof(table));
        IlgpuIndexBuffer ids = Own(tokens, nameof(tokens));
        IlgpuComputeBuffer result = Own(output, nameof(output));
        // Checked on the host copy before anything is launched, so a bad batch leaves the output untouched.
        CheckEmbed(weights, ids.HostShadow, result.Length, rows);
        if (rows == 0)
            return;
        lock (_gate)
        {
            ThrowIfDisposed();
            _embed ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<float>, ArrayView<ushort>, int, int, ArrayView<float>>(IlgpuKernels.Embed);
            _embed(rows * weights.Columns, ids.View, weights.AsF32, weights.As16, weights.DTypeCode, weights.Columns, result.View);
        }
    }

    public void RmsNorm(ComputeBuffer input, WeightTensor weight, float eps, ComputeBuffer output, int rows, int width)
    {
        IlgpuComputeBuffer x = Own(input, nameof(input));
        IlgpuComputeBuffer y = Own(output, nameof(output));
        IlgpuWeightTensor gamma = Own(weight, nameof(weight));
        CheckRmsNorm(x.Length, gamma, y.Length, rows, width);
        if (rows == 0)
            return;
        lock (_gate)
        {
            ThrowIfDisposed();
            _rmsNorm ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, float, int, ArrayView<float>>(IlgpuKernels.RmsNorm);
            _rmsNorm(rows, x.View, gamma.AsF32, gamma.As16, gamma.DTypeCode, eps, width, y.View);
        }
    }

    public void AddBias(ComputeBuffer values, WeightTensor bias, int rows, int width)
    {
        IlgpuComputeBuffer x = Own(values, nameof(values));
        IlgpuWeightTensor b = Own(bias, nameof(bias));
        CheckAddBias(x.Length, b, rows, width);
        if (rows == 0)
            return;
        lock (_gate)
        {
            ThrowIfDisposed();
            _addBias ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, int>(IlgpuKernels.AddBias);
            _addBias(rows * width, x.View, b.AsF32, b.As16, b.DTypeCode, width);
        }
    }

    public void AddRmsNorm(ComputeBuffer residual, ComputeBuffer delta, WeightTensor weight, float eps, ComputeBuffer normed, int rows, int width)
    {
        IlgpuComputeBuffer sum = Own(residual, nameof(residual));
        IlgpuComputeBuffer addend = Own(delta, nameof(delta));
        IlgpuComputeBuffer y = Own(normed, nameof(normed));
        IlgpuWeightTensor gamma = Own(weight, nameof(weight));
        CheckAddRmsNorm(sum.Length, addend.Length, gamma, y.Length, rows, width);
        if (rows == 0)
            return;
        lock (_gate)
        {
            ThrowIfDisposed();
            _addRmsNorm ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, float, int, ArrayView<float>>(IlgpuKernels.AddRmsNorm);
            _addRmsNorm(rows, sum.View, addend.View, gamma.AsF32, gamma.As16, gamma.DTypeCode, eps, width, y.View);
        }
    }

    public void MatMul(ComputeBuffer input, WeightTensor weight, ComputeBuffer output, int rows)
    {
        IlgpuComputeBuffer x = Own(input, nameof(input));
        IlgpuComputeBuffer y = Own(output, nameof(output));
        IlgpuWeightTensor w = Own(weight, nameof(weight));
        CheckMatMul(x, w, y, rows);
        if (rows == 0)
            return;
        lock (_gate)
        {
            ThrowIfDisposed();
            _matMul ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<ushort>, int, int, int, ArrayView<float>>(IlgpuKernels.MatMul);
            _matMul(checked(rows * w.Rows), x.View, w.AsF32, w.As16, w.DTypeCode, w.Columns, w.Rows, y.View);
        }
    }

    public void Rope(ComputeBuffer x, IndexBuffer positions, WeightTensor inverseFrequencies, int rows, int heads, int headDim)
    {
        IlgpuComputeBuffer values = Own(x, nameof(x));
        IlgpuIndexBuffer at = Own(positions, nameof(positions));
        IlgpuWeightTensor frequencies = Own(inverseFrequencies, nameof(inverseFrequencies));
        CheckRope(values.Length, at.HostShadow, frequencies, rows, heads, headDim);
        CheckFloat32(frequencies, nameof(inverseFrequencies));
        if (rows == 0)
            return;
        lock (_gate)
        {
            ThrowIfDisposed();
            _rope ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int>(IlgpuKernels.Rope);
            _rope(checked(rows * heads * (headDim / 2)), values.View, at.View, frequencies.AsF32, heads, headDim);
        }
    }

    public void StoreKv(KvCacheStorage cache, int layer, ComputeBuffer keys, ComputeBuffer values, IndexBuffer slots, int rows)
    {
        IlgpuKvCache kv = Own(cache, nameof(cache));
        IlgpuComputeBuffer k = Own(keys, nameof(keys));
        IlgpuComputeBuffer v = Own(values, nameof(values));
        IlgpuIndexBuffer at = Own(slots, nameof(slots));
        CheckStoreKv(kv, layer, k.Length, v.Length, at.HostShadow, rows);
        int width = kv.KvWidth;
        if (rows == 0)
            return;
        lock (_gate)
        {
            ThrowIfDisposed();
            _storeKv ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, long, ArrayView<float>, ArrayView<float>>(IlgpuKernels.StoreKv);
            _storeKv(checked(rows * width), k.View, v.View, at.View, width, kv.LayerStart(layer), kv.Keys, kv.Values);
        }
    }

    public bool SupportsSlidingWindow => true;

    public void TreeAttention(ComputeBuffer queries, KvCacheStorage cache, int layer, IndexBuffer positions, IndexBuffer? recentSlots,
        int window, ComputeBuffer output, int rows, int heads, int kvHeads, int headDim, IndexBuffer? sequences = null, int slidingWindow = 0) =>
        AttentionOverSlots(queries, cache, layer, positions, RecentSlotsFor(recentSlots, window), window, output, rows, heads, kvHeads, headDim, sequences, slidingWindow);

    private void AttentionOverSlots(ComputeBuffer queries, KvCacheStorage cache, int layer, IndexBuffer positions, IndexBuffer? recentSlots,
        int window, ComputeBuffer output, int rows, int heads, int kvHeads, int headDim, IndexBuffer? sequences = null, int slidingWindow = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slidingWindow);
        IlgpuComputeBuffer q = Own(queries, nameof(queries));
        IlgpuComputeBuffer o = Own(output, nameof(output));
        IlgpuIndexBuffer at = Own(positions, nameof(positions));
        IlgpuKvCache kv = Own(cache, nameof(cache));
        CheckAttention(kv, layer, q.Length, at.HostShadow, o.Length, rows, heads, kvHeads, headDim);
        IlgpuIndexBuffer? tree = recentSlots is null ? null : Own(recentSlots, nameof(recentSlots));
        if (tree is not null) CheckRecentSlots(at.HostShadow, tree.HostShadow, rows, window, kv.Slots, nameof(recentSlots));
        if (tree is null) window = 0;
        IlgpuIndexBuffer? rowSequences = sequences is null ? null : Own(sequences, nameof(sequences));
        if (rowSequences is not null) CheckSequences(rowSequences.HostShadow, rows, kv, nameof(sequences));
        if (rows == 0)
            return;
        // With window 0 the kernels never read the slot view: any view will do.
        ArrayView<int> recent = tree is null ? at.View : tree.View;

        // Scores are laid out [rows × heads, keyStride]; the stride only places them, each row still reads keys
        // 0..position in order, so a longer neighbour does not change its bits.
        int keyStride = at.HostShadow.AsSpan(0, rows).ToArray().Max() + 1;
        int items = rows * heads;
        long scoreCount = (long)items * keyStride;
        if (scoreCount > int.MaxValue)
            throw new ArgumentException($"{rows} rows × {heads} heads × {keyStride} keys exceed one launch", nameof(rows));
        float scale = 1f / MathF.Sqrt(headDim);
        int groupSize = heads / kvHeads;
        long layerStart = kv.LayerStart(layer);
        lock (_gate)
        {
            ThrowIfDisposed();
            ArrayView<float> scores = Scratch(ref _attentionScores, scoreCount);
            // The kernels take each row's first slot (its sequence's) as a view, empty when every row is of sequence 0:
            // ILGPU kernels take at most 14 parameters, so the sequence ids and capacity become one view on the host.
            ArrayView<int> bases = at.View.SubView(0, 0);
            if (rowSequences is not null)
            {
                if (_firstSlots.Length < rows) _firstSlots = new int[Math.Max(rows, 2 * _firstSlots.Length)];
                for (int r = 0; r < rows; r++) _firstSlots[r] = rowSequences.HostShadow[r] * kv.Capacity;
                bases = Scratch(ref _attentionBases, rows).SubView(0, rows);
                bases.CopyFromCPU(_firstSlots.AsSpan(0, rows));
            }
            _attentionScoresKernel ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, int, ArrayView<int>, long, int, int, int, int, int, float, ArrayView<float>>(IlgpuKernels.AttentionScores);
            _attentionSoftmax ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, int, int, int, ArrayView<float>>(IlgpuKernels.AttentionSoftmax);
            _attentionValues ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, int, ArrayView<int>, long, int, int, int, int, int, ArrayView<float>>(IlgpuKernels.AttentionValues);
            _attentionScoresKernel((int)scoreCount, q.View, kv.Keys, at.View, recent, window, bases, layerStart, heads, groupSize, headDim, kv.KvWidth, keyStride, scale, scores);
            _attentionSoftmax(items, at.View, heads, keyStride, slidingWindow, scores);
            _attentionValues(checked(items * headDim), scores, kv.Values, at.View, recent, window, bases, layerStart, heads, groupSize, headDim, kv.KvWidth, keyStride, o.View);
        }
    }

    public void MoveKvSlots(KvCacheStorage cache, ReadOnlySpan<int> from, ReadOnlySpan<int> to)
    {
        IlgpuKvCache kv = Own(cache, nameof(cache));
        CheckSlotMoves(from, to, kv.Slots);
        int width = kv.KvWidth;
        lock (_gate)
        {
            ThrowIfDisposed();
            // A handful of rows per round (a tree's accepted path), in order: one device copy per layer and row.
            for (int i = 0; i < from.Length; i++)
            {
                if (from[i] == to[i]) continue;
                for (int layer = 0; layer < kv.Layers; layer++)
                {
                    long source = kv.LayerStart(layer) + (long)from[i] * width, target = kv.LayerStart(layer) + (long)to[i] * width;
                    kv.Keys.SubView(source, width).CopyTo(kv.Keys.SubView(target, width));
                    kv.Values.SubView(source, width).CopyTo(kv.Values.SubView(target, width));
                }
            }
        }
    }

    public void SiluMul(ComputeBuffer gate, ComputeBuffer up, ComputeBuffer output, int count)
    {
        IlgpuComputeBuffer g = Own(gate, nameof(gate));
        IlgpuComputeBuffer u = Own(up, nameof(up));
        IlgpuComputeBuffer o = Own(output, nameof(output));
        CheckSiluMul(g.Length, u.Length, o.Length, count);
        if (count == 0)
            return;
        lock (_gate)
        {
            ThrowIfDisposed();
            _siluMul ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>(IlgpuKernels.SiluMul);
            _siluMul(count, g.View, u.View, o.View);
        }
    }

    public void ArgmaxWithProbability(ComputeBuffer logits, int rows, int vocab, Span<int> tokens, Span<float> probabilities)
    {
        IlgpuComputeBuffer values = Own(logits, nameof(logits));
        CheckArgmax(values, rows, vocab, tokens, probabilities);
        if (rows == 0)
            return;
        lock (_gate)
        {
            ThrowIfDisposed();
            ArrayView<int> bestTokens = Scratch(ref _argmaxTokens, rows);
            ArrayView<float> bestProbabilities = Scratch(ref _argmaxProbabilities, rows);
            _argmax ??= _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, int, ArrayView<int>, ArrayView<float>>(IlgpuKernels.ArgmaxWithProbability);
            _argmax(rows, values.View, vocab, bestTokens, bestProbabilities);
            _accelerator.Synchronize();
            bestTokens.SubView(0, rows).CopyToCPU(tokens[..rows]);
            bestProbabilities.SubView(0, rows).CopyToCPU(probabilities[..rows]);
        }
    }

    public void Synchronize()
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            _accelerator.Synchronize();
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
            _attentionScores?.Dispose();
            _attentionBases?.Dispose();
            _argmaxTokens?.Dispose();
            _argmaxProbabilities?.Dispose();
            // Disposing the accelerator also releases any buffer a caller has not disposed yet.
            _accelerator.Dispose();
            _context.Dispose();
        }
    }

    // ---------------------------------------------------------------- helpers

    /// <summary>A backend-owned scratch buffer of at least <paramref name="length"/> elements, grown (never shrunk) on demand.</summary>
    private ArrayView<T> Scratch<T>(ref MemoryBuffer1D<T, Stride1D.Dense>? buffer, long length) where T : unmanaged
    {
        if (buffer is null || buffer.Length < length)
        {
            buffer?.Dispose();
            buffer = _accelerator.Allocate1D<T>(Math.Max(length, buffer?.Length * 2 ?? 0));
        }
        return buffer.View;
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    private IlgpuComputeBuffer Own(ComputeBuffer buffer, string name) =>
        buffer is IlgpuComputeBuffer own && own.Owner == this ? own : throw Foreign(buffer, name);

    private IlgpuIndexBuffer Own(IndexBuffer buffer, string name) =>
        buffer is IlgpuIndexBuffer own && own.Owner == this ? own : throw Foreign(buffer, name);

    private IlgpuKvCache Own(KvCacheStorage cache, string name) =>
        cache is IlgpuKvCache own && own.Owner == this ? own : throw Foreign(cache, name);

    private IlgpuWeightTensor Own(WeightTensor weight, string name)
    {
        if (weight is not IlgpuWeightTensor own || own.Owner != this)
            throw Foreign(weight, name);
        ObjectDisposedException.ThrowIf(own.IsDisposed, own);
        return own;
    }

    private static ArgumentException Foreign(object? resource, string name) => resource is null
        ? new ArgumentNullException(name)
        : new ArgumentException($"{resource.GetType().Name} was not created by this ILGPU backend", name);
}
