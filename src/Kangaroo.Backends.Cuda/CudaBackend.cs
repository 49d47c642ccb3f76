using Kangaroo.Backends.Cuda.Launchers;
using Kangaroo.Cuda;
using Kangaroo.Weights;

using static Kangaroo.Backends.BackendArguments;

namespace Kangaroo.Backends.Cuda;

/// <summary>
/// The fast path: our own kernels (kernels/*.cu) through our own driver-API + NVRTC binding. Activations F32, weights in
/// their stored dtype, KV cache F16 by default (F32 on request). Row invariant like every backend (see the kernels'
/// comments for how).
/// <para>
/// All work goes onto one stream in call order; calls from several sessions are serialized by a lock, so sessions may
/// share the backend from many threads. Uploads and downloads wait for the stream first, so host buffers can be reused
/// at once.
/// </para>
/// <para>
/// This class holds the memory, uploads, graph capture, timers and the lock. Each op goes to the launcher of its kernel
/// file (Launchers/), which checks the arguments, chooses the kernel and its grid, and packs its arguments.
/// </para>
/// </summary>
public sealed class CudaBackend : IComputeBackend, IGraphCapture, IDeviceTimer, IBandwidthProbe, IKernelLaunchCounter
{
    private readonly object _gate = new();
    private readonly CudaDevice _device;
    private readonly CudaContext _context;
    private readonly CudaStream _stream;
    private readonly CudaKernels _kernels;
    private readonly KernelQueue _queue;
    private readonly MatMulLauncher _matMul;
    private readonly AttentionLauncher _attention;
    private readonly NormLauncher _norm;
    private readonly ElementwiseLauncher _elementwise;
    private readonly SelectionLauncher _selection;

    /// <summary>Whether this machine can run the backend; <paramref name="reason"/> says why not (no driver, no GPU, no NVRTC).</summary>
    public static bool IsAvailable(out string? reason)
    {
        if (!CudaRuntime.TryInitialize(out reason)) return false;
        var nvrtc = CudaRuntime.NvrtcAvailability;
        if (!nvrtc.IsAvailable)
        {
            reason = nvrtc.Reason;
            return false;
        }
        return true;
    }

    private readonly DType _kvCacheType;

    /// <param name="deviceOrdinal">Which GPU.</param>
    /// <param name="kernelCacheDirectory">Where compiled kernels are cached; null = the default cache.</param>
    /// <param name="kvCacheType">F16 (default: half the attention bytes) or F32 (exact storage, for parity checks).</param>
    /// <param name="tensorCoreMatMul">
    /// F16/BF16 matmuls on the tensor-core kernels (every row count, decode steps included; the matrices repacked into
    /// their tile layout at load) instead of the CUDA-core ones; null = KANGAROO_MATMUL_TENSOR_CORES (1 or 0), else the
    /// CUDA-core kernels. Each choice is row invariant on its own, so Kangaroo equals vanilla under either; the two give
    /// different bits. The tensor cores verify several rows and batches for much less and decode the 7B shape within a few
    /// percent, but one sequence of a small model decodes 2-4% slower on them (bench/RESULTS.md), hence not the default.
    /// </param>
    public CudaBackend(int deviceOrdinal = 0, string? kernelCacheDirectory = null, DType kvCacheType = DType.F16, bool? tensorCoreMatMul = null)
    {
        if (kvCacheType is not (DType.F16 or DType.F32))
            throw new ArgumentOutOfRangeException(nameof(kvCacheType), kvCacheType, "the KV cache is F16 or F32");
        _kvCacheType = kvCacheType;
        if (!IsAvailable(out string? reason))
            throw new KangarooException($"the CUDA backend is not available: {reason}");
        _device = CudaDevice.Get(deviceOrdinal);
        _context = CudaContext.Primary(_device);
        try
        {
            _stream = CudaStream.Create(_context);
            // The launchers' constants, which KANGAROO_KERNEL_DEFINES="FEATURES=2 ..." may override (tuning without a rebuild).
            var defines = KernelDefines.FromEnvironment();
            _kernels = new CudaKernels(_context, _device.ComputeCapability, new NvrtcCompiler(kernelCacheDirectory), defines.Options);
            _queue = new KernelQueue(_gate, _context, _device, _stream, _kernels);
            _matMul = new MatMulLauncher(_queue, defines, tensorCoreMatMul ?? MatMulLauncher.TensorCoresFromEnvironment());
            _attention = new AttentionLauncher(_queue, defines);
            _norm = new NormLauncher(_queue, defines);
            _elementwise = new ElementwiseLauncher(_queue);
            _selection = new SelectionLauncher(_queue, defines);
        }
        catch
        {
            _stream?.Dispose();
            _context.Dispose();
            throw;
        }
        var (major, minor) = _device.ComputeCapability;
        DeviceName = $"{_device.Name} (sm_{major}{minor}, {_device.MultiprocessorCount} SMs, {_device.TotalMemoryBytes / (1L << 30)} GiB, " +
                     $"driver {CudaRuntime.Availability.DriverVersionText}, NVRTC {CudaRuntime.NvrtcAvailability.VersionText})";
    }

    public string Name => "cuda";
    public string DeviceName { get; }

    /// <summary>The device, for tools that report on it (bandwidth probes, benchmarks).</summary>
    public CudaDevice Device => _device;

    // ------------------------------------------------------------------ memory

    public WeightTensor LoadWeight(TensorView source, int rows, int columns)
    {
        CheckWeightView(source, rows, columns);
        lock (_gate)
        {
            var memory = AllocateBytes(source.ByteLength, $"weight {source.Name}");
            unsafe
            {
                // Chunks keep each span under 2 GiB; a single tensor may be larger.
                const long chunk = 1L << 30;
                for (long offset = 0; offset < source.ByteLength; offset += chunk)
                {
                    int length = (int)Math.Min(chunk, source.ByteLength - offset);
                    memory.CopyFrom(new ReadOnlySpan<byte>(source.Pointer + offset, length), offset);
                }
            }
            if (!_matMul.TakesTiles(source.DType, rows)) return new CudaWeight(source.Name, source.DType, rows, columns, memory);
            using (memory)
                return new CudaWeight(source.Name, source.DType, rows, columns, _matMul.PackIntoTiles(memory, rows, columns, source.Name), tiled: true);
        }
    }

    public WeightTensor LoadWeight(string name, ReadOnlySpan<float> values, int rows, int columns)
    {
        CheckWeightValues(name, values.Length, rows, columns);
        lock (_gate)
        {
            var memory = AllocateBytes((long)values.Length * sizeof(float), $"weight {name}");
            memory.CopyFrom(values);
            return new CudaWeight(name, DType.F32, rows, columns, memory);
        }
    }

    public ComputeBuffer Allocate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        lock (_gate) return new CudaActivations(AllocateBytes((long)Math.Max(length, 1) * sizeof(float), "activations"), length);
    }

    public IndexBuffer AllocateIndices(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        lock (_gate)
        {
            var memory = AllocateBytes((long)Math.Max(length, 1) * sizeof(int), "indices");
            return new CudaIndices(memory, PinnedHostBuffer<int>.Allocate(_context, Math.Max(length, 1)),
                CudaEvent.Create(_context, enableTiming: false), length);
        }
    }

    public KvCacheStorage AllocateKvCache(int layers, int capacity, int kvWidth, int sequences = 1)
    {
        CheckKvCacheShape(layers, capacity, kvWidth, sequences);
        if (capacity > _attention.MaxContext)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, $"the CUDA attention kernels handle contexts up to {_attention.MaxContext} positions");
        long bytes = (long)layers * sequences * capacity * kvWidth * _kvCacheType.SizeInBytes();
        lock (_gate)
        {
            var keys = AllocateBytes(bytes, $"KV cache keys ({layers} layers × {sequences} × {capacity} positions)");
            try
            {
                return new CudaKvCache(layers, capacity, kvWidth, sequences, _kvCacheType, keys, AllocateBytes(bytes, "KV cache values"));
            }
            catch
            {
                keys.Dispose();
                throw;
            }
        }
    }

    private DeviceBuffer AllocateBytes(long bytes, string what) => _queue.Allocate(bytes, what);

    public void Upload(ReadOnlySpan<float> source, ComputeBuffer destination, int destinationOffset = 0)
    {
        var d = AsCuda(destination);
        CheckRange(destinationOffset, source.Length, d.Length, nameof(destinationOffset));
        lock (_gate)
        {
            _stream.Synchronize();
            d.Memory.CopyFrom(source, (long)destinationOffset * sizeof(float));
        }
    }

    public void Upload(ReadOnlySpan<int> source, IndexBuffer destination)
    {
        var d = AsCuda(destination);
        CheckIndexUpload(source.Length, d.Length);
        if (source.IsEmpty) return;
        lock (_gate)
        {
            if (_queue.Capturing) throw new InvalidOperationException("uploads cannot be recorded: stage inputs before recording");
            d.Copied.Synchronize();   // the staging buffer's previous copy has run (long since, in a decode loop)
            source.CopyTo(d.Staging.Span);
            d.Memory.CopyFromAsync(d.Staging, _stream, 0, 0, source.Length);
            d.Copied.Record(_stream);
            source.CopyTo(d.Host);
        }
    }

    public void Download(ComputeBuffer source, int sourceOffset, Span<float> destination)
    {
        var s = AsCuda(source);
        CheckRange(sourceOffset, destination.Length, s.Length, nameof(sourceOffset));
        lock (_gate)
        {
            _stream.Synchronize();
            s.Memory.CopyTo(destination, (long)sourceOffset * sizeof(float));
        }
    }

    public void Copy(ComputeBuffer source, int sourceOffset, ComputeBuffer destination, int destinationOffset, int count)
    {
        var s = AsCuda(source);
        var d = AsCuda(destination);
        CheckCopy(sourceOffset, s.Length, destinationOffset, d.Length, count);
        if (count == 0) return;
        lock (_gate)
            d.Memory.CopyFromDeviceAsync(s.Memory, _stream, (long)count * sizeof(float), (long)sourceOffset * sizeof(float), (long)destinationOffset * sizeof(float));
    }

    // ------------------------------------------------------------------ ops

    public void Embed(WeightTensor table, IndexBuffer tokens, ComputeBuffer output, int rows)
    {
        var t = AsCuda(table);
        if (t.Tiled) _matMul.EmbedFromTiles(t, AsCuda(tokens), AsCuda(output), rows);
        else _elementwise.Embed(t, AsCuda(tokens), AsCuda(output), rows);
    }

    public void RmsNorm(ComputeBuffer input, WeightTensor weight, float eps, ComputeBuffer output, int rows, int width) =>
        _norm.RmsNorm(AsCuda(input), AsCuda(weight), eps, AsCuda(output), rows, width);

    public void AddBias(ComputeBuffer values, WeightTensor bias, int rows, int width) =>
        _elementwise.AddBias(AsCuda(values), AsCuda(bias), rows, width);

    public void AddRmsNorm(ComputeBuffer residual, ComputeBuffer delta, WeightTensor weight, float eps, ComputeBuffer normed, int rows, int width) =>
        _norm.AddRmsNorm(AsCuda(residual), AsCuda(delta), AsCuda(weight), eps, AsCuda(normed), rows, width);

    public void MatMul(ComputeBuffer input, WeightTensor weight, ComputeBuffer output, int rows) =>
        _matMul.MatMul(AsCuda(input), AsCuda(weight), AsCuda(output), rows);

    public void MatMulShared(ComputeBuffer input, int rows, WeightTensor first, ComputeBuffer firstOutput,
        WeightTensor second, ComputeBuffer secondOutput, WeightTensor? third = null, ComputeBuffer? thirdOutput = null)
    {
        if ((third is null) != (thirdOutput is null))
            throw new ArgumentException("a third weight needs a third output, and the other way round", nameof(thirdOutput));
        _matMul.MatMulShared(AsCuda(input), rows, AsCuda(first), AsCuda(firstOutput), AsCuda(second), AsCuda(secondOutput),
            third is null ? null : AsCuda(third), thirdOutput is null ? null : AsCuda(thirdOutput));
    }

    public void MatMulSiluMul(ComputeBuffer input, WeightTensor gate, WeightTensor up, ComputeBuffer output, ComputeBuffer upScratch, int rows) =>
        _matMul.MatMulSiluMul(AsCuda(input), AsCuda(gate), AsCuda(up), AsCuda(output), rows);

    public void Rope(ComputeBuffer x, IndexBuffer positions, WeightTensor inverseFrequencies, int rows, int heads, int headDim) =>
        _elementwise.Rope(AsCuda(x), AsCuda(positions), AsCuda(inverseFrequencies), rows, heads, headDim);

    public void StoreKv(KvCacheStorage cache, int layer, ComputeBuffer keys, ComputeBuffer values, IndexBuffer slots, int rows) =>
        _elementwise.StoreKv(AsCuda(cache), layer, AsCuda(keys), AsCuda(values), AsCuda(slots), rows);

    public void RopeAndStoreKv(ComputeBuffer queries, ComputeBuffer keys, ComputeBuffer values, IndexBuffer positions, WeightTensor inverseFrequencies,
        KvCacheStorage cache, int layer, IndexBuffer slots, int rows, int heads, int kvHeads, int headDim) =>
        _elementwise.RopeAndStoreKv(AsCuda(queries), AsCuda(keys), AsCuda(values), AsCuda(positions), AsCuda(inverseFrequencies),
            AsCuda(cache), layer, AsCuda(slots), rows, heads, kvHeads, headDim);

    public void TreeAttention(ComputeBuffer queries, KvCacheStorage cache, int layer, IndexBuffer positions, IndexBuffer? recentSlots,
        int window, ComputeBuffer output, int rows, int heads, int kvHeads, int headDim, IndexBuffer? sequences = null, int slidingWindow = 0)
    {
        // Models ask only backends that SupportsSlidingWindow; contexts within the window need none (LlamaConfig.CheckContext).
        if (slidingWindow != 0)
            throw new ArgumentOutOfRangeException(nameof(slidingWindow), slidingWindow, "the CUDA backend does not implement sliding-window attention yet");
        _attention.AttentionOverSlots(AsCuda(queries), AsCuda(cache), layer, AsCuda(positions),
            RecentSlotsFor(recentSlots, window) is { } recent ? AsCuda(recent) : null, window, AsCuda(output),
            rows, heads, kvHeads, headDim, sequences is null ? null : AsCuda(sequences));
    }

    public void CopyRows(ComputeBuffer source, IndexBuffer sourceRows, ComputeBuffer destination, IndexBuffer destinationRows, int rows, int width) =>
        _elementwise.CopyRows(AsCuda(source), AsCuda(sourceRows), AsCuda(destination), AsCuda(destinationRows), rows, width);

    public void MoveKvSlots(KvCacheStorage cache, ReadOnlySpan<int> from, ReadOnlySpan<int> to)
    {
        var kv = AsCuda(cache);
        CheckSlotMoves(from, to, kv.Slots);
        if (from.IsEmpty) return;
        int count = from.Length;
        if (kv.Moves is null || kv.Moves.Length < 2 * count)
        {
            kv.Moves?.Dispose();
            kv.Moves = AllocateIndices(Math.Max(2 * count, 64));
        }
        Span<int> moves = stackalloc int[2 * count];
        from.CopyTo(moves);
        to.CopyTo(moves[count..]);
        Upload(moves, kv.Moves);
        _elementwise.MoveKvSlots(kv, AsCuda(kv.Moves), count);
    }

    public void SiluMul(ComputeBuffer gate, ComputeBuffer up, ComputeBuffer output, int count) =>
        _elementwise.SiluMul(AsCuda(gate), AsCuda(up), AsCuda(output), count);

    public void TopKWithProbabilities(ComputeBuffer logits, int rows, int vocab, int k, Span<int> tokens, Span<float> probabilities) =>
        _selection.TopKWithProbabilities(AsCuda(logits), rows, vocab, k, tokens, probabilities);

    public void ArgmaxWithProbability(ComputeBuffer logits, int rows, int vocab, Span<int> tokens, Span<float> probabilities) =>
        _selection.ArgmaxWithProbability(AsCuda(logits), rows, vocab, tokens, probabilities);

    public void Synchronize()
    {
        lock (_gate) _stream.Synchronize();
    }

    /// <summary>A device-to-device copy (cuMemcpyDtoDAsync) and the read_sum kernel over <paramref name="bytes"/>, each the median of 5 timed runs.</summary>
    public BandwidthFigures MeasureBandwidth(long bytes = 1L << 30)
    {
        long vectors = Math.Max(1, bytes / 16);
        bytes = vectors * 16;
        const int threads = ElementwiseLauncher.ReadSumThreads;
        uint blocks = (uint)(_device.MultiprocessorCount * 8);
        using var source = AllocateBytes(bytes, "bandwidth probe");
        using var destination = AllocateBytes(bytes, "bandwidth probe");
        using var partials = AllocateBytes(blocks * (threads / 32) * sizeof(float), "bandwidth probe");
        void Copy() { lock (_gate) destination.CopyFromDeviceAsync(source, _stream, bytes, 0, 0); }
        void Read() => _elementwise.ReadSum(source, vectors, partials, blocks);
        double Median(Action work)
        {
            TimeOnDevice(work);   // warm-up
            var times = new double[5];
            for (int i = 0; i < times.Length; i++) times[i] = TimeOnDevice(work);
            Array.Sort(times);
            return times[times.Length / 2];
        }
        double copyMicroseconds = Median(Copy), readMicroseconds = Median(Read);
        return new BandwidthFigures(2.0 * bytes / (copyMicroseconds * 1e3), bytes / (readMicroseconds * 1e3), bytes);
    }

    private CudaEvent? _timerStart, _timerEnd;

    /// <summary>Device time of the queued work, between two events on the backend's stream (about 0.5 µs resolution).</summary>
    public double TimeOnDevice(Action work)
    {
        ArgumentNullException.ThrowIfNull(work);
        lock (_gate)
        {
            _timerStart ??= CudaEvent.Create(_context);
            _timerEnd ??= CudaEvent.Create(_context);
            _timerStart.Record(_stream);
            work();   // its launches take the same (re-entrant) lock
            _timerEnd.Record(_stream);
            _timerEnd.Synchronize();
            return CudaEvent.ElapsedMilliseconds(_timerStart, _timerEnd) * 1000.0;
        }
    }

    public long KernelLaunches
    {
        get { lock (_gate) return _queue.Launches; }
    }

    public ICapturedWork Capture(Action record)
    {
        ArgumentNullException.ThrowIfNull(record);
        // The lock is held throughout: another session's ops must not land in this stream while it is being captured.
        lock (_gate)
        {
            _queue.BeginRecording();
            CudaGraph.BeginCapture(_stream);
            CudaGraphExec graph;
            try
            {
                record();
            }
            catch
            {
                try { CudaGraph.EndCapture(_stream).Dispose(); } catch (CudaException) { }
                _queue.Capturing = false;
                throw;
            }
            try
            {
                graph = CudaGraph.EndCapture(_stream);
            }
            finally
            {
                _queue.Capturing = false;
            }
            return new RecordedGraph(this, graph, _queue.Recorded);
        }
    }

    private sealed class RecordedGraph(CudaBackend backend, CudaGraphExec graph, int kernels) : ICapturedWork
    {
        public void Replay()
        {
            lock (backend._gate)
            {
                graph.Launch(backend._stream);
                backend._queue.Replayed(kernels);
            }
        }

        public void Dispose()
        {
            lock (backend._gate) graph.Dispose();
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _selection.Dispose();
            _timerStart?.Dispose();
            _timerEnd?.Dispose();
            _kernels.Dispose();
            _stream.Dispose();
            _context.Dispose();
        }
    }

    // ------------------------------------------------------------------ helpers

    private static CudaActivations AsCuda(ComputeBuffer b) => b as CudaActivations ?? throw new ArgumentException("not a CUDA buffer of this backend");
    private static CudaIndices AsCuda(IndexBuffer b) => b as CudaIndices ?? throw new ArgumentException("not a CUDA index buffer of this backend");
    private static CudaWeight AsCuda(WeightTensor w) => w as CudaWeight ?? throw new ArgumentException("not a CUDA weight of this backend");
    private static CudaKvCache AsCuda(KvCacheStorage c) => c as CudaKvCache ?? throw new ArgumentException("not a CUDA KV cache of this backend");
}
