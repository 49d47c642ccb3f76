using System.Globalization;
using System.Numerics.Tensors;
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
/// </summary>
public sealed class CudaBackend : IComputeBackend, IGraphCapture, IDeviceTimer, IBandwidthProbe
{
    private const int ElementwiseThreads = 256;
    private const int NormThreads = 1024;
    private const int MatMulThreads = 128;
    private const int AttentionThreads = 128;
    private readonly int AttentionBlockKeys;
    private const int AttentionMaxHeadDim = 256;
    private const int AttentionRowsPerBlock = 8;            // attention.cu: ATTENTION_ROWS
    private const int AttentionMaxCombinedBlocks = 1024;   // attention.cu: ATTENTION_MAX_BLOCKS_COMBINED
    private const int ArgmaxThreads = 256;

    private readonly object _gate = new();
    private readonly CudaDevice _device;
    private readonly CudaContext _context;
    private readonly CudaStream _stream;
    private readonly CudaKernels _kernels;
    private DeviceBuffer? _selectedTokens, _selectedProbabilities;   // argmax / top-k results on their way to the host
    private bool _capturing;

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
    // matmul.cu's tile widths (FEATURES for batches, FEATURES_R1 for one row) and resident blocks per multiprocessor.
    private readonly int _matMulFeatures, _matMulFeaturesOneRow, _matMulBlocksPerSm, _matMulBlocksPerSmOneRow;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<CudaFunction, int> _matMulResidentBlocks = new();

    /// <param name="deviceOrdinal">Which GPU.</param>
    /// <param name="kernelCacheDirectory">Where compiled kernels are cached; null = the default cache.</param>
    /// <param name="kvCacheType">F16 (default: half the attention bytes) or F32 (exact storage, for parity checks).</param>
    public CudaBackend(int deviceOrdinal = 0, string? kernelCacheDirectory = null, DType kvCacheType = DType.F16)
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
            // KANGAROO_KERNEL_DEFINES="FEATURES=2 ..." and KANGAROO_MATMUL_BLOCKS_PER_SM tune kernels without a rebuild.
            string[] defines = (Environment.GetEnvironmentVariable("KANGAROO_KERNEL_DEFINES") ?? "")
                .Split(' ', StringSplitOptions.RemoveEmptyEntries);
            AttentionBlockKeys = Define(defines, "ATTENTION_BLOCK_KEYS", 32);
            _matMulFeatures = Define(defines, "FEATURES", 4);
            _matMulFeaturesOneRow = Define(defines, "FEATURES_R1", 2);
            // Measured best on an H100 (bench/RESULTS.md): 2-row tiles at up to 16 blocks for decode, 4-row at 8 for batches.
            bool blocksSet = int.TryParse(Environment.GetEnvironmentVariable("KANGAROO_MATMUL_BLOCKS_PER_SM"), out int perSm) && perSm > 0;
            _matMulBlocksPerSm = blocksSet ? perSm : 8;
            _matMulBlocksPerSmOneRow = blocksSet ? perSm : 16;
            _kernels = new CudaKernels(_context, _device.ComputeCapability, new NvrtcCompiler(kernelCacheDirectory), defines);
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
        if (source.ElementCount != (long)rows * columns)
            throw new ArgumentException($"{source.Name} has {source.ElementCount} elements, not {rows} × {columns}", nameof(source));
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
            return new CudaWeight(source.Name, source.DType, rows, columns, memory);
        }
    }

    public WeightTensor LoadWeight(string name, ReadOnlySpan<float> values, int rows, int columns)
    {
        if (values.Length != (long)rows * columns)
            throw new ArgumentException($"{name} has {values.Length} values, not {rows} × {columns}", nameof(values));
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
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(layers);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kvWidth);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sequences);
        if (capacity > AttentionMaxCombinedBlocks * AttentionBlockKeys)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, $"the CUDA attention kernels handle contexts up to {AttentionMaxCombinedBlocks * AttentionBlockKeys} positions");
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

    private DeviceBuffer AllocateBytes(long bytes, string what)
    {
        try
        {
            return DeviceBuffer.Allocate(_context, Math.Max(bytes, 4));
        }
        catch (CudaException e)
        {
            var (free, total) = _context.MemoryInfo();
            throw new KangarooException($"out of GPU memory for {what}: asked {bytes:N0} bytes, {free:N0} of {total:N0} free ({e.Message})", e);
        }
    }

    public void Upload(ReadOnlySpan<float> source, ComputeBuffer destination, int destinationOffset = 0)
    {
        var d = AsCuda(destination);
        if (destinationOffset < 0 || destinationOffset + source.Length > d.Length)
            throw new ArgumentOutOfRangeException(nameof(destinationOffset), $"{source.Length} values at {destinationOffset} do not fit {d.Length}");
        lock (_gate)
        {
            _stream.Synchronize();
            d.Memory.CopyFrom(source, (long)destinationOffset * sizeof(float));
        }
    }

    public void Upload(ReadOnlySpan<int> source, IndexBuffer destination)
    {
        var d = AsCuda(destination);
        if (source.Length > d.Length) throw new ArgumentException($"{source.Length} indices do not fit {d.Length}", nameof(source));
        if (source.IsEmpty) return;
        lock (_gate)
        {
            if (_capturing) throw new InvalidOperationException("uploads cannot be recorded: stage inputs before recording");
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
        if (sourceOffset < 0 || sourceOffset + destination.Length > s.Length)
            throw new ArgumentOutOfRangeException(nameof(sourceOffset), $"{destination.Length} values at {sourceOffset} are outside {s.Length}");
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
        if (count < 0 || sourceOffset < 0 || destinationOffset < 0 || sourceOffset + count > s.Length || destinationOffset + count > d.Length)
            throw new ArgumentOutOfRangeException(nameof(count), $"copy of {count} from {sourceOffset} (of {s.Length}) to {destinationOffset} (of {d.Length})");
        if (count == 0) return;
        lock (_gate)
            d.Memory.CopyFromDeviceAsync(s.Memory, _stream, (long)count * sizeof(float), (long)sourceOffset * sizeof(float), (long)destinationOffset * sizeof(float));
    }

    // ------------------------------------------------------------------ ops

    public void Embed(WeightTensor table, IndexBuffer tokens, ComputeBuffer output, int rows)
    {
        var t = AsCuda(table);
        var ids = AsCuda(tokens);
        var o = AsCuda(output);
        CheckRows(rows, ids.Length, nameof(tokens));
        CheckExtent(o.Length, rows, t.Columns, nameof(output));
        for (int r = 0; r < rows; r++)
        {
            if ((uint)ids.Host[r] >= (uint)t.Rows)
                throw new ArgumentOutOfRangeException(nameof(tokens), ids.Host[r], $"token id outside the table's {t.Rows} rows");
        }
        if (rows == 0) return;
        var args = new KernelArguments();
        args.Add(t.Memory); args.Add(ids.Memory); args.Add(o.Memory); args.Add(rows); args.Add(t.Columns);
        Launch(_kernels.ForType("embed", t.DType), Blocks((long)rows * t.Columns, ElementwiseThreads), ElementwiseThreads, args);
    }

    public void RmsNorm(ComputeBuffer input, WeightTensor weight, float eps, ComputeBuffer output, int rows, int width)
    {
        var x = AsCuda(input);
        var w = AsCuda(weight);
        var y = AsCuda(output);
        CheckNorm(rows, width, x.Length, y.Length, w);
        if (rows == 0) return;
        var args = new KernelArguments();
        args.Add(x.Memory); args.Add(w.Memory); args.Add(eps); args.Add(y.Memory); args.Add(width);
        Launch(_kernels.ForType("rmsnorm", w.DType), (uint)rows, NormThreads, args);
    }

    public void AddRmsNorm(ComputeBuffer residual, ComputeBuffer delta, WeightTensor weight, float eps, ComputeBuffer normed, int rows, int width)
    {
        var r = AsCuda(residual);
        var d = AsCuda(delta);
        var w = AsCuda(weight);
        var y = AsCuda(normed);
        CheckNorm(rows, width, r.Length, y.Length, w);
        CheckExtent(d.Length, rows, width, nameof(delta));
        if (rows == 0) return;
        var args = new KernelArguments();
        args.Add(r.Memory); args.Add(d.Memory); args.Add(w.Memory); args.Add(eps); args.Add(y.Memory); args.Add(width);
        Launch(_kernels.ForType("add_rmsnorm", w.DType), (uint)rows, NormThreads, args);
    }

    public void MatMul(ComputeBuffer input, WeightTensor weight, ComputeBuffer output, int rows)
    {
        var x = AsCuda(input);
        var w = AsCuda(weight);
        var y = AsCuda(output);
        CheckMatMul(x, w, y, rows, nameof(output));
        if (rows == 0) return;
        LaunchMatMul(x, rows, w.Columns, w.DType, (w, y), default, default);
    }

    public void MatMulShared(ComputeBuffer input, int rows, WeightTensor first, ComputeBuffer firstOutput,
        WeightTensor second, ComputeBuffer secondOutput, WeightTensor? third = null, ComputeBuffer? thirdOutput = null)
    {
        if ((third is null) != (thirdOutput is null))
            throw new ArgumentException("a third weight needs a third output, and the other way round", nameof(thirdOutput));
        var x = AsCuda(input);
        var (w0, y0, w1, y1) = (AsCuda(first), AsCuda(firstOutput), AsCuda(second), AsCuda(secondOutput));
        CheckMatMul(x, w0, y0, rows, nameof(firstOutput));
        CheckMatMul(x, w1, y1, rows, nameof(secondOutput));
        (CudaWeight, CudaActivations) target2 = default;
        if (third is not null)
        {
            var (w2, y2) = (AsCuda(third), AsCuda(thirdOutput!));
            CheckMatMul(x, w2, y2, rows, nameof(thirdOutput));
            target2 = (w2, y2);
        }
        if (w1.Columns != w0.Columns || (target2.Item1 is { } w2c && w2c.Columns != w0.Columns))
            throw new ArgumentException("weights that share an input must have the same number of columns", nameof(second));
        if (rows == 0) return;
        // One launch needs one weight type; mixed types (never seen in a checkpoint, but legal) take one launch each.
        if (w1.DType != w0.DType || (target2.Item1 is { } w2t && w2t.DType != w0.DType))
        {
            LaunchMatMul(x, rows, w0.Columns, w0.DType, (w0, y0), default, default);
            LaunchMatMul(x, rows, w1.Columns, w1.DType, (w1, y1), default, default);
            if (target2.Item1 is { } w2d) LaunchMatMul(x, rows, w2d.Columns, w2d.DType, target2, default, default);
            return;
        }
        LaunchMatMul(x, rows, w0.Columns, w0.DType, (w0, y0), (w1, y1), target2);
    }

    public void MatMulSiluMul(ComputeBuffer input, WeightTensor gate, WeightTensor up, ComputeBuffer output, ComputeBuffer upScratch, int rows)
    {
        var x = AsCuda(input);
        var (g, u, y) = (AsCuda(gate), AsCuda(up), AsCuda(output));
        CheckMatMul(x, g, y, rows, nameof(output));
        if (u.Rows != g.Rows || u.Columns != g.Columns || u.DType != g.DType)
            throw new ArgumentException($"up ({u.Rows}×{u.Columns} {u.DType}) must have the shape and type of gate ({g.Rows}×{g.Columns} {g.DType})", nameof(up));
        if (rows == 0) return;
        var args = new KernelArguments();
        args.Add(x.Memory); args.Add(rows); args.Add(g.Columns); args.Add(g.Memory); args.Add(u.Memory); args.Add(y.Memory); args.Add(g.Rows);
        // A tile holds FEATURES / 2 gate rows and the same up rows (matmul.cu).
        int half = (rows == 1 ? _matMulFeaturesOneRow : _matMulFeatures) / 2;
        var kernel = _kernels.ForType("matmul_silu", g.DType, rows == 1 ? "_r1" : "");
        Launch(kernel, MatMulGrid(kernel, (g.Rows + half - 1) / half), MatMulThreads, args);
    }

    private static void CheckRotary(CudaWeight frequencies, int headDim)
    {
        if (headDim <= 0 || headDim % 2 != 0) throw new ArgumentException($"head dimension {headDim} must be even and positive", nameof(headDim));
        if (frequencies.DType != DType.F32 || (long)frequencies.Rows * frequencies.Columns < headDim / 2)
            throw new ArgumentException($"rotary frequencies must be {headDim / 2} F32 values", "inverseFrequencies");
    }

    private static void CheckStore(CudaKvCache kv, int layer, CudaActivations keys, CudaActivations values, CudaIndices slots, int rows)
    {
        CheckLayer(kv, layer);
        CheckRows(rows, slots.Length, nameof(slots));
        CheckExtent(keys.Length, rows, kv.KvWidth, nameof(keys));
        CheckExtent(values.Length, rows, kv.KvWidth, nameof(values));
        CheckPositions(slots.Host, rows, kv.Slots, nameof(slots));
    }

    private void CheckMatMul(CudaActivations x, CudaWeight w, CudaActivations y, int rows, string outputName)
    {
        if (ReferenceEquals(x, y)) throw new ArgumentException("MatMul cannot write its output over its input", outputName);
        CheckRows(rows, int.MaxValue, nameof(rows));
        CheckExtent(x.Length, rows, w.Columns, "input");
        CheckExtent(y.Length, rows, w.Rows, outputName);
    }

    // Up to three weights sharing x, one output each; absent targets are default. matmul.cu: a block tile is FEATURES
    // weight rows of one matrix; blocks grid-stride over the tiles of all three.
    private void LaunchMatMul(CudaActivations x, int rows, int columns, DType dtype,
        (CudaWeight W, CudaActivations Y) first, (CudaWeight? W, CudaActivations? Y) second, (CudaWeight? W, CudaActivations? Y) third)
    {
        var args = new KernelArguments();
        args.Add(x.Memory); args.Add(rows); args.Add(columns);
        int features = rows == 1 ? _matMulFeaturesOneRow : _matMulFeatures;
        int tiles = AddTarget(ref args, first.W, first.Y, features) + AddTarget(ref args, second.W, second.Y, features) +
                    AddTarget(ref args, third.W, third.Y, features);
        // One row (a decode step) takes the variant without accumulators for absent rows: same operations, more blocks resident.
        var kernel = _kernels.ForType("matmul", dtype, rows == 1 ? "_r1" : "");
        Launch(kernel, MatMulGrid(kernel, tiles), MatMulThreads, args);
    }

    private static int AddTarget(ref KernelArguments args, CudaWeight? w, CudaActivations? y, int features)
    {
        if (w is null)
        {
            args.Add(0UL); args.Add(0UL); args.Add(0);
            return 0;
        }
        args.Add(w.Memory); args.Add(y!.Memory); args.Add(w.Rows);
        return (w.Rows + features - 1) / features;
    }

    // Blocks grid-stride over the tiles, so the grid is what fits on the GPU at once (never a second, partial wave): the
    // kernel's own occupancy, capped by the blocks-per-multiprocessor setting.
    private uint MatMulGrid(CudaFunction kernel, int tiles)
    {
        // Computed once per kernel; later launches read it without a lock or an allocation.
        int resident = _matMulResidentBlocks.GetOrAdd(kernel, static (k, self) =>
        {
            int cap = k.Name.EndsWith("_r1", StringComparison.Ordinal) ? self._matMulBlocksPerSmOneRow : self._matMulBlocksPerSm;
            return self._device.MultiprocessorCount * Math.Clamp(k.MaxActiveBlocksPerMultiprocessor(MatMulThreads), 1, cap);
        }, this);
        return (uint)Math.Min(tiles, resident);
    }

    public void Rope(ComputeBuffer x, IndexBuffer positions, WeightTensor inverseFrequencies, int rows, int heads, int headDim)
    {
        var v = AsCuda(x);
        var p = AsCuda(positions);
        var f = AsCuda(inverseFrequencies);
        CheckRotary(f, headDim);
        CheckRows(rows, p.Length, nameof(positions));
        CheckExtent(v.Length, rows, (long)heads * headDim, nameof(x));
        if (rows == 0) return;
        var args = new KernelArguments();
        args.Add(v.Memory); args.Add(p.Memory); args.Add(f.Memory); args.Add(rows); args.Add(heads); args.Add(headDim);
        Launch(_kernels["rope"], Blocks((long)rows * heads * (headDim / 2), ElementwiseThreads), ElementwiseThreads, args);
    }

    public void StoreKv(KvCacheStorage cache, int layer, ComputeBuffer keys, ComputeBuffer values, IndexBuffer slots, int rows)
    {
        var kv = AsCuda(cache);
        var k = AsCuda(keys);
        var v = AsCuda(values);
        var s = AsCuda(slots);
        CheckStore(kv, layer, k, v, s, rows);
        if (rows == 0) return;
        var args = new KernelArguments();
        args.Add(kv.Keys); args.Add(kv.Values); args.Add(k.Memory); args.Add(v.Memory); args.Add(s.Memory);
        args.Add(rows); args.Add(kv.KvWidth); args.Add(kv.LayerOffset(layer));
        Launch(_kernels.ForType("store_kv", kv.DType), Blocks((long)rows * kv.KvWidth, ElementwiseThreads), ElementwiseThreads, args);
    }

    public void RopeAndStoreKv(ComputeBuffer queries, ComputeBuffer keys, ComputeBuffer values, IndexBuffer positions, WeightTensor inverseFrequencies,
        KvCacheStorage cache, int layer, IndexBuffer slots, int rows, int heads, int kvHeads, int headDim)
    {
        var (q, k, v) = (AsCuda(queries), AsCuda(keys), AsCuda(values));
        var (p, s, f, kv) = (AsCuda(positions), AsCuda(slots), AsCuda(inverseFrequencies), AsCuda(cache));
        CheckRotary(f, headDim);
        CheckAttentionShape(kv, heads, kvHeads, headDim);
        CheckRows(rows, p.Length, nameof(positions));
        CheckExtent(q.Length, rows, (long)heads * headDim, nameof(queries));
        CheckStore(kv, layer, k, v, s, rows);
        if (rows == 0) return;
        var args = new KernelArguments();
        args.Add(q.Memory); args.Add(k.Memory); args.Add(v.Memory); args.Add(p.Memory); args.Add(f.Memory);
        args.Add(kv.Keys); args.Add(kv.Values); args.Add(s.Memory);
        args.Add(rows); args.Add(heads); args.Add(kvHeads); args.Add(headDim); args.Add(kv.LayerOffset(layer));
        long items = (long)rows * ((heads + kvHeads) * (headDim / 2) + kv.KvWidth);
        Launch(_kernels.ForType("rope_store_kv", kv.DType), Blocks(items, ElementwiseThreads), ElementwiseThreads, args);
    }

    public void Attention(ComputeBuffer queries, KvCacheStorage cache, int layer, IndexBuffer positions, ComputeBuffer output,
        int rows, int heads, int kvHeads, int headDim) =>
        AttentionOverSlots(queries, cache, layer, positions, null, 0, output, rows, heads, kvHeads, headDim, null);

    public void TreeAttention(ComputeBuffer queries, KvCacheStorage cache, int layer, IndexBuffer positions, IndexBuffer recentSlots,
        int window, ComputeBuffer output, int rows, int heads, int kvHeads, int headDim, IndexBuffer? sequences = null) =>
        AttentionOverSlots(queries, cache, layer, positions, recentSlots, window, output, rows, heads, kvHeads, headDim, sequences);

    // The kernels always take a window of recent slots and the rows' sequences; a plain attention passes neither.
    private void AttentionOverSlots(ComputeBuffer queries, KvCacheStorage cache, int layer, IndexBuffer positions, IndexBuffer? recentSlots,
        int window, ComputeBuffer output, int rows, int heads, int kvHeads, int headDim, IndexBuffer? sequences)
    {
        var q = AsCuda(queries);
        var kv = AsCuda(cache);
        var p = AsCuda(positions);
        var o = AsCuda(output);
        CheckLayer(kv, layer);
        CheckAttentionShape(kv, heads, kvHeads, headDim);
        if (headDim > AttentionMaxHeadDim) throw new ArgumentOutOfRangeException(nameof(headDim), headDim, $"head dimensions up to {AttentionMaxHeadDim} are supported");
        if (ReferenceEquals(q, o)) throw new ArgumentException("attention cannot write its output over its queries", nameof(output));
        CheckRows(rows, p.Length, nameof(positions));
        CheckExtent(q.Length, rows, (long)heads * headDim, nameof(queries));
        CheckExtent(o.Length, rows, (long)heads * headDim, nameof(output));
        CheckPositions(p.Host, rows, kv.Capacity, nameof(positions));
        var recent = recentSlots is null ? null : AsCuda(recentSlots);
        if (recent is not null) CheckRecentSlots(p.Host, recent.Host, rows, window, kv.Slots, nameof(recentSlots));
        var rowSequences = sequences is null ? null : AsCuda(sequences);
        if (rowSequences is not null) CheckSequences(rowSequences.Host, rows, kv, nameof(sequences));
        if (rows == 0) return;

        // Partials are sized for the whole cache, so a recorded launch (which must cover any later position) never
        // outgrows them; plain launches only start the key blocks the longest row reaches.
        int capacityBlocks = (kv.Capacity - 1) / AttentionBlockKeys + 1;
        int maxBlocks;
        lock (_gate)
        {
            maxBlocks = _capturing ? capacityBlocks : TensorPrimitives.Max<int>(p.Host.AsSpan(0, rows)) / AttentionBlockKeys + 1;
            long partialBytes = (long)rows * heads * capacityBlocks * (headDim + 2) * sizeof(float);
            if (kv.Partials is null || kv.Partials.ByteLength < partialBytes)
            {
                if (_capturing) throw new InvalidOperationException("attention scratch must be sized by a plain run before recording");
                kv.Partials?.Dispose();
                kv.Partials = AllocateBytes(partialBytes, "attention partials");
            }
        }
        float scale = 1f / MathF.Sqrt(headDim);
        var partialArgs = new KernelArguments();
        partialArgs.Add(q.Memory); partialArgs.Add(kv.Keys); partialArgs.Add(kv.Values); partialArgs.Add(p.Memory);
        if (recent is null) partialArgs.Add(0UL); else partialArgs.Add(recent.Memory);
        partialArgs.Add(recent is null ? 0 : window);
        if (rowSequences is null) partialArgs.Add(0UL); else partialArgs.Add(rowSequences.Memory);
        partialArgs.Add(kv.Capacity);
        partialArgs.Add(kv.Partials!); partialArgs.Add(rows); partialArgs.Add(heads); partialArgs.Add(kvHeads); partialArgs.Add(headDim);
        partialArgs.Add(kv.KvWidth); partialArgs.Add(kv.LayerOffset(layer)); partialArgs.Add(scale); partialArgs.Add(maxBlocks);
        // A decode step takes the kernel for one row, short verifications those for 2 or 4: the same operations per row,
        // fewer registers and shorter loops than the 8-row kernel.
        int rowsPerBlock = rows <= 1 ? 1 : rows <= 2 ? 2 : rows <= 4 ? 4 : AttentionRowsPerBlock;
        // Rows of different sequences share no keys: grouping them only serializes their loads in one block. A batch of
        // several sequences takes the one-row kernel (same bits, more blocks): on the bench model (H100, 24 prompts) this
        // raised 16-sequence vanilla from 3292 to 5468 tok/s (bench/RESULTS.md).
        if (rowSequences is not null) rowsPerBlock = 1;
        string variant = rowsPerBlock == AttentionRowsPerBlock ? "" : "_r" + rowsPerBlock.ToString(CultureInfo.InvariantCulture);
        Launch(_kernels.ForType("attention_partial", kv.DType, (headDim > 128 ? "_wide" : "") + variant),
            new Dim3((uint)((rows + rowsPerBlock - 1) / rowsPerBlock * heads), (uint)maxBlocks), AttentionThreads, partialArgs);

        var combineArgs = new KernelArguments();
        combineArgs.Add(kv.Partials!); combineArgs.Add(p.Memory); combineArgs.Add(o.Memory); combineArgs.Add(heads); combineArgs.Add(headDim); combineArgs.Add(maxBlocks);
        Launch(_kernels["attention_combine"], (uint)(rows * heads), AttentionThreads, combineArgs);
    }

    public void CopyRows(ComputeBuffer source, IndexBuffer sourceRows, ComputeBuffer destination, IndexBuffer destinationRows, int rows, int width)
    {
        var (from, to) = (AsCuda(source), AsCuda(destination));
        var (read, write) = (AsCuda(sourceRows), AsCuda(destinationRows));
        CheckRowCopies(read.Host, write.Host, rows, width, from.Length, to.Length, ReferenceEquals(from, to));
        if (rows == 0) return;
        var args = new KernelArguments();
        args.Add(from.Memory); args.Add(read.Memory); args.Add(to.Memory); args.Add(write.Memory); args.Add(rows); args.Add(width);
        Launch(_kernels["copy_rows"], Blocks((long)rows * width, ElementwiseThreads), ElementwiseThreads, args);
    }

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
        var args = new KernelArguments();
        args.Add(kv.Keys); args.Add(kv.Values); args.Add(AsCuda(kv.Moves).Memory); args.Add(count); args.Add(kv.KvWidth);
        args.Add(kv.LayerOffset(1));
        Launch(_kernels.ForType("kv_move_slots", kv.DType), (uint)kv.Layers, ElementwiseThreads, args);
    }

    public void SiluMul(ComputeBuffer gate, ComputeBuffer up, ComputeBuffer output, int count)
    {
        var g = AsCuda(gate);
        var u = AsCuda(up);
        var o = AsCuda(output);
        if (count < 0 || count > g.Length || count > u.Length || count > o.Length)
            throw new ArgumentOutOfRangeException(nameof(count), count, "larger than a buffer");
        if (count == 0) return;
        var args = new KernelArguments();
        args.Add(g.Memory); args.Add(u.Memory); args.Add(o.Memory); args.Add(count);
        Launch(_kernels["silu_mul"], Blocks(count, ElementwiseThreads), ElementwiseThreads, args);
    }

    public void TopKWithProbabilities(ComputeBuffer logits, int rows, int vocab, int k, Span<int> tokens, Span<float> probabilities)
    {
        CheckTopK(logits, rows, vocab, k, tokens, probabilities);
        SelectOnDevice("top_k_probability", AsCuda(logits), rows, vocab, k, tokens, probabilities);
    }

    public void ArgmaxWithProbability(ComputeBuffer logits, int rows, int vocab, Span<int> tokens, Span<float> probabilities)
    {
        var l = AsCuda(logits);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocab);
        CheckRows(rows, Math.Min(tokens.Length, probabilities.Length), nameof(tokens));
        CheckExtent(l.Length, rows, vocab, nameof(logits));
        SelectOnDevice("argmax_probability", l, rows, vocab, 1, tokens, probabilities);
    }

    /// <summary>
    /// Runs a selection kernel of sampling.cu (one block per row of logits, <paramref name="perRow"/> ids and probabilities
    /// out per row) and copies its few bytes back: what crosses to the host instead of the logits.
    /// </summary>
    private void SelectOnDevice(string kernel, CudaActivations logits, int rows, int vocab, int perRow, Span<int> tokens, Span<float> probabilities)
    {
        if (rows == 0) return;
        int count = rows * perRow;
        lock (_gate)
        {
            if (_selectedTokens is null || _selectedTokens.ByteLength < count * sizeof(int))
            {
                _selectedTokens?.Dispose();
                _selectedProbabilities?.Dispose();
                int capacity = Math.Max(count, 256);
                _selectedTokens = AllocateBytes(capacity * sizeof(int), "selection results");
                _selectedProbabilities = AllocateBytes(capacity * sizeof(float), "selection results");
            }
            var args = new KernelArguments();
            args.Add(logits.Memory); args.Add(vocab);
            if (kernel == "top_k_probability") args.Add(perRow);
            args.Add(_selectedTokens); args.Add(_selectedProbabilities!);
            _kernels[kernel].Launch(_stream, (uint)rows, ArgmaxThreads, 0, in args);
            _stream.Synchronize();
            _selectedTokens.CopyTo(tokens[..count]);
            _selectedProbabilities!.CopyTo(probabilities[..count]);
        }
    }

    public void Synchronize()
    {
        lock (_gate) _stream.Synchronize();
    }

    /// <summary>A device-to-device copy (cuMemcpyDtoDAsync) and the read_sum kernel over <paramref name="bytes"/>, each the median of 5 timed runs.</summary>
    public BandwidthFigures MeasureBandwidth(long bytes = 1L << 30)
    {
        long vectors = Math.Max(1, bytes / 16);
        bytes = vectors * 16;
        const int threads = 256;
        uint blocks = (uint)(_device.MultiprocessorCount * 8);
        using var source = AllocateBytes(bytes, "bandwidth probe");
        using var destination = AllocateBytes(bytes, "bandwidth probe");
        using var partials = AllocateBytes(blocks * (threads / 32) * sizeof(float), "bandwidth probe");
        void Copy() { lock (_gate) destination.CopyFromDeviceAsync(source, _stream, bytes, 0, 0); }
        void Read()
        {
            var args = new KernelArguments();
            args.Add(source); args.Add(vectors); args.Add(partials);
            Launch(_kernels["read_sum"], blocks, threads, args);
        }
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

    public ICapturedWork Capture(Action record)
    {
        ArgumentNullException.ThrowIfNull(record);
        // The lock is held throughout: another session's ops must not land in this stream while it is being captured.
        lock (_gate)
        {
            _capturing = true;
            CudaGraph.BeginCapture(_stream);
            CudaGraphExec graph;
            try
            {
                record();
            }
            catch
            {
                try { CudaGraph.EndCapture(_stream).Dispose(); } catch (CudaException) { }
                _capturing = false;
                throw;
            }
            try
            {
                graph = CudaGraph.EndCapture(_stream);
            }
            finally
            {
                _capturing = false;
            }
            return new RecordedGraph(this, graph);
        }
    }

    private sealed class RecordedGraph(CudaBackend backend, CudaGraphExec graph) : ICapturedWork
    {
        public void Replay()
        {
            lock (backend._gate) graph.Launch(backend._stream);
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
            _selectedTokens?.Dispose();
            _selectedProbabilities?.Dispose();
            _timerStart?.Dispose();
            _timerEnd?.Dispose();
            _kernels.Dispose();
            _stream.Dispose();
            _context.Dispose();
        }
    }

    // ------------------------------------------------------------------ helpers

    private void Launch(CudaFunction function, Dim3 grid, Dim3 block, in KernelArguments args)
    {
        lock (_gate) function.Launch(_stream, grid, block, 0, in args);
    }

    private static int Define(string[] defines, string name, int fallback) =>
        defines.Select(d => d.Split('=')).Where(p => p.Length == 2 && p[0] == name).Select(p => int.Parse(p[1])).LastOrDefault(fallback);

    private static uint Blocks(long elements, int threads) => (uint)((elements + threads - 1) / threads);

    private static CudaActivations AsCuda(ComputeBuffer b) => b as CudaActivations ?? throw new ArgumentException("not a CUDA buffer of this backend");
    private static CudaIndices AsCuda(IndexBuffer b) => b as CudaIndices ?? throw new ArgumentException("not a CUDA index buffer of this backend");
    private static CudaWeight AsCuda(WeightTensor w) => w as CudaWeight ?? throw new ArgumentException("not a CUDA weight of this backend");
    private static CudaKvCache AsCuda(KvCacheStorage c) => c as CudaKvCache ?? throw new ArgumentException("not a CUDA KV cache of this backend");

    private static void CheckRows(int rows, int available, string name)
    {
        if (rows < 0 || rows > available) throw new ArgumentOutOfRangeException(name, rows, $"{rows} rows, {available} available");
    }


    private static void CheckNorm(int rows, int width, long inputLength, long outputLength, CudaWeight weight)
    {
        CheckRows(rows, int.MaxValue, nameof(rows));
        if ((long)weight.Rows * weight.Columns != width) throw new ArgumentException($"norm weight has {weight.Rows * weight.Columns} values, width is {width}");
        CheckExtent(inputLength, rows, width, "input");
        CheckExtent(outputLength, rows, width, "output");
    }


}
