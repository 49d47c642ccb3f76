using Kangaroo.Backends;
using Kangaroo.Weights;
using Xunit;

namespace Kangaroo.Tests.Backends;

/// <summary>
/// The contract of <see cref="IComputeBackend"/>, run by every backend: each op against <see cref="ScalarOps"/>
/// on fresh random inputs, and exact row invariance for the ops a forward pass batches.
/// <para>
/// Outputs are poisoned with NaN before each op, so an element the op fails to write fails the comparison.
/// </para>
/// <para>
/// Tolerance: element i passes when |actual − expected| ≤ 1e-5 · max(|expected|, rms(expected)). The
/// relative part is the F32 budget (eps ≈ 6e-8; a blocked F32 sum of n products of random sign errs by about
/// eps·√n relative to the output's scale, ~4e-6 at n = 4096 in the worst realistic case). The floor at the
/// output's RMS is what makes the per-element check fair near zero: a dot product that cancels to ~0 carries
/// an absolute error on the scale of its terms, not of its result. Unlike a norm-wide relative error it still
/// catches a single wrong element. F16/BF16 weights widen exactly to F32, and the reference is fed the
/// same widened values, so the same tolerance applies to them.
/// </para>
/// </summary>
public abstract class BackendConformanceTests : IDisposable
{
    protected const double Tolerance = 1e-5;

    private readonly NativeTensors _tensors = new();
    private readonly List<IDisposable> _resources = [];
    private IComputeBackend? _backend;
    private readonly Random _random;

    protected BackendConformanceTests() => _random = new Random(12345);

    protected abstract IComputeBackend CreateBackend();

    /// <summary>
    /// Relative tolerance of attention, which reads keys and values back from the cache: a backend that stores them in
    /// F16 (the GPU backends, for bandwidth) rounds them to 11 significant bits, within the F16-operand bound of 1e-2.
    /// </summary>
    protected virtual double AttentionTolerance => Tolerance;

    /// <summary>Why the backend cannot run on this machine (no GPU, no driver), or null; non-null skips every test.</summary>
    protected virtual string? UnavailableReason => null;

    protected IComputeBackend Backend
    {
        get
        {
            if (UnavailableReason is { } reason)
                Assert.Skip(reason);
            return _backend ??= CreateBackend();
        }
    }

    public void Dispose()
    {
        // Weights, buffers and caches first, then the backend, then the memory the weight views point into.
        for (int i = _resources.Count - 1; i >= 0; i--)
            _resources[i].Dispose();
        _backend?.Dispose();
        _tensors.Dispose();
        GC.SuppressFinalize(this);
    }

    public static TheoryData<DType> WeightTypes => [DType.F32, DType.F16, DType.BF16];

    // ---------------------------------------------------------------- Embed

    [Theory]
    [MemberData(nameof(WeightTypes))]
    public void Embed_GathersRowsConvertedToF32(DType dtype)
    {
        const int vocab = 50, width = 37;
        var (table, exact) = Weight(dtype, vocab, width);
        int[] ids = [3, 0, 49, 3, 17];
        ComputeBuffer output = Poisoned(ids.Length * width);

        Backend.Embed(table, Indices(ids), output, ids.Length);

        float[] actual = Download(output, ids.Length * width);
        for (int r = 0; r < ids.Length; r++)
            AssertBitwiseEqual(exact.AsSpan(ids[r] * width, width), actual.AsSpan(r * width, width), $"embedding row {r}");
    }

    [Theory]
    [InlineData(50)]
    [InlineData(-1)]
    [InlineData(int.MaxValue)]
    public void Embed_TokenOutsideTable_Throws(int badId)
    {
        var (table, _) = Weight(DType.F16, 50, 8);
        Assert.ThrowsAny<ArgumentException>(() => Backend.Embed(table, Indices([1, badId]), Poisoned(16), 2));
    }

    // ---------------------------------------------------------------- RmsNorm

    [Theory]
    [MemberData(nameof(WeightTypes))]
    public void RmsNorm_MatchesReference(DType dtype)
    {
        const int rows = 5, width = 133;
        const float eps = 1e-5f;
        var (gamma, exactGamma) = Weight(dtype, 1, width);
        float[] x = RandomValues(rows * width, 3f);
        ComputeBuffer output = Poisoned(rows * width);

        Backend.RmsNorm(Upload(x), gamma, eps, output, rows, width);

        AssertClose(ScalarOps.RmsNorm(x, exactGamma, eps, rows, width), Download(output, rows * width));
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F16)]
    [InlineData(DType.BF16)]
    public void AddBias_AddsTheBiasToEveryRow(DType dtype)
    {
        const int rows = 5, width = 133;
        var (bias, exactBias) = Weight(dtype, 1, width);
        float[] x = RandomValues(rows * width, 3f);
        ComputeBuffer buffer = Upload(x);

        Backend.AddBias(buffer, bias, rows, width);

        // One F32 addition per element: every backend gets these bits exactly.
        float[] expected = x.Select((v, i) => v + exactBias[i % width]).ToArray();
        AssertBitwiseEqual(expected, Download(buffer, rows * width), $"{dtype} bias");
        Backend.AddBias(buffer, bias, 0, width);
        Assert.ThrowsAny<ArgumentException>(() => Backend.AddBias(buffer, bias, rows, width + 1));
        Assert.ThrowsAny<ArgumentException>(() => Backend.AddBias(buffer, bias, rows + 1, width));
    }

    [Fact]
    public void RmsNorm_InPlace_MatchesReference()
    {
        const int rows = 3, width = 64;
        var (gamma, exactGamma) = Weight(DType.F32, 1, width);
        float[] x = RandomValues(rows * width);
        ComputeBuffer buffer = Upload(x);

        Backend.RmsNorm(buffer, gamma, 1e-6f, buffer, rows, width);

        AssertClose(ScalarOps.RmsNorm(x, exactGamma, 1e-6f, rows, width), Download(buffer, rows * width));
    }

    [Fact]
    public void AddRmsNorm_MatchesAddThenRmsNormBitForBit()
    {
        const int rows = 4, width = 200;
        const float eps = 1e-6f;
        var (gamma, exactGamma) = Weight(DType.BF16, 1, width);
        float[] residual = RandomValues(rows * width, 2f);
        float[] delta = RandomValues(rows * width);
        ComputeBuffer residualBuffer = Upload(residual);
        ComputeBuffer normed = Poisoned(rows * width);

        Backend.AddRmsNorm(residualBuffer, Upload(delta), gamma, eps, normed, rows, width);

        float[] sum = Download(residualBuffer, rows * width);
        for (int i = 0; i < sum.Length; i++)
            Assert.Equal(residual[i] + delta[i], sum[i]);
        float[] fused = Download(normed, rows * width);
        AssertClose(ScalarOps.RmsNorm(sum, exactGamma, eps, rows, width), fused);

        ComputeBuffer unfused = Poisoned(rows * width);
        Backend.RmsNorm(Upload(sum), gamma, eps, unfused, rows, width);
        AssertBitwiseEqual(Download(unfused, rows * width), fused, "AddRmsNorm vs Add + RmsNorm");
    }

    // ---------------------------------------------------------------- MatMul

    public static TheoryData<DType, int, int, int> MatMulShapes => new()
    {
        { DType.F32, 1, 64, 48 },
        { DType.F32, 3, 67, 29 },
        { DType.F32, 9, 300, 130 },
        { DType.F16, 1, 64, 48 },
        { DType.F16, 3, 67, 29 },
        { DType.F16, 9, 1000, 257 },
        { DType.BF16, 1, 64, 48 },
        { DType.BF16, 3, 67, 29 },
        { DType.BF16, 9, 1000, 257 },
        { DType.F16, 2, 4096, 40 },
    };

    [Theory]
    [MemberData(nameof(MatMulShapes))]
    public void MatMul_MatchesReference(DType dtype, int rows, int columns, int outFeatures)
    {
        var (weight, exact) = Weight(dtype, outFeatures, columns);
        float[] x = RandomValues(rows * columns);
        ComputeBuffer output = Poisoned(rows * outFeatures);

        Backend.MatMul(Upload(x), weight, output, rows);

        AssertClose(ScalarOps.MatMul(x, exact, rows, columns, outFeatures), Download(output, rows * outFeatures));
    }

    [Theory]
    [MemberData(nameof(WeightTypes))]
    public void MatMul_IsRowInvariant(DType dtype)
    {
        const int maxRows = 64, columns = 200, outFeatures = 72;
        var (weight, _) = Weight(dtype, outFeatures, columns);
        float[] x = RandomValues(maxRows * columns);
        float[][] alone = new float[maxRows][];
        for (int r = 0; r < maxRows; r++)
        {
            ComputeBuffer single = Poisoned(outFeatures);
            Backend.MatMul(Upload(x.AsSpan(r * columns, columns).ToArray()), weight, single, 1);
            alone[r] = Download(single, outFeatures);
        }

        ComputeBuffer input = Upload(x);
        ComputeBuffer batch = Allocate(maxRows * outFeatures);
        for (int rows = 1; rows <= maxRows; rows++)
        {
            Poison(batch, maxRows * outFeatures);
            Backend.MatMul(input, weight, batch, rows);
            float[] result = Download(batch, rows * outFeatures);
            for (int r = 0; r < rows; r++)
                AssertBitwiseEqual(alone[r], result.AsSpan(r * outFeatures, outFeatures), $"MatMul row {r} of {rows}");
        }

        // Same rows among other neighbours (larger values, in reverse order): still the same bits.
        float[] shuffled = RandomValues(maxRows * columns, 100f);
        for (int r = 0; r < maxRows; r += 3)
            x.AsSpan(r * columns, columns).CopyTo(shuffled.AsSpan((maxRows - 1 - r) * columns));
        Backend.MatMul(Upload(shuffled), weight, batch, maxRows);
        float[] mixed = Download(batch, maxRows * outFeatures);
        for (int r = 0; r < maxRows; r += 3)
            AssertBitwiseEqual(alone[r], mixed.AsSpan((maxRows - 1 - r) * outFeatures, outFeatures), $"MatMul row {r} among others");
    }

    [Fact]
    public void MatMul_ConcurrentCallsOnSharedWeight_MatchSequential()
    {
        const int rows = 4, columns = 512, outFeatures = 256, callers = 4;
        var (weight, _) = Weight(DType.F16, outFeatures, columns);
        float[][] inputs = Enumerable.Range(0, callers).Select(_ => RandomValues(rows * columns)).ToArray();
        var sequential = new float[callers][];
        var inputBuffers = inputs.Select(Upload).ToArray();
        var outputBuffers = inputs.Select(_ => Allocate(rows * outFeatures)).ToArray();
        for (int c = 0; c < callers; c++)
        {
            Backend.MatMul(inputBuffers[c], weight, outputBuffers[c], rows);
            sequential[c] = Download(outputBuffers[c], rows * outFeatures);
        }

        IComputeBackend backend = Backend;
        Parallel.For(0, callers, new ParallelOptions { MaxDegreeOfParallelism = callers }, c =>
        {
            for (int repeat = 0; repeat < 20; repeat++)
                backend.MatMul(inputBuffers[c], weight, outputBuffers[c], rows);
        });

        for (int c = 0; c < callers; c++)
            AssertBitwiseEqual(sequential[c], Download(outputBuffers[c], rows * outFeatures), $"caller {c}");
    }

    [Fact]
    public void MatMul_BufferTooSmall_Throws()
    {
        var (weight, _) = Weight(DType.F32, 8, 16);
        Assert.ThrowsAny<ArgumentException>(() => Backend.MatMul(Allocate(2 * 16 - 1), weight, Allocate(2 * 8), 2));
        Assert.ThrowsAny<ArgumentException>(() => Backend.MatMul(Allocate(2 * 16), weight, Allocate(2 * 8 - 1), 2));
    }

    [Fact]
    public void LoadWeight_ElementCountMismatch_Throws()
    {
        TensorView view = _tensors.Create("w", DType.F16, [4, 6], new byte[4 * 6 * 2]);
        Assert.Throws<ArgumentException>(() => Backend.LoadWeight(view, 4, 5));
        Assert.Throws<ArgumentException>(() => Backend.LoadWeight(view, 5, 6));
        Assert.ThrowsAny<ArgumentException>(() => Backend.LoadWeight("v", new float[5], 2, 3));
    }

    // ---------------------------------------------------------------- Fused steps: the bits of the ops they replace

    public static TheoryData<DType, int, int> FusedShapes => new()
    {
        { DType.F32, 1, 64 }, { DType.F32, 9, 67 },
        { DType.F16, 1, 256 }, { DType.F16, 3, 67 }, { DType.F16, 10, 1000 },
        { DType.BF16, 1, 1000 }, { DType.BF16, 9, 256 },
    };

    [Theory]
    [MemberData(nameof(FusedShapes))]
    public void MatMulShared_MatchesSeparateMatMulsBitForBit(DType dtype, int rows, int columns)
    {
        int[] outFeatures = [48, 21, 33];
        var weights = outFeatures.Select(o => Weight(dtype, o, columns).Weight).ToArray();
        ComputeBuffer x = Upload(RandomValues(rows * columns));
        float[][] separate = weights.Select(w =>
        {
            ComputeBuffer y = Poisoned(rows * w.Rows);
            Backend.MatMul(x, w, y, rows);
            return Download(y, rows * w.Rows);
        }).ToArray();

        var outputs = outFeatures.Select(o => Poisoned(rows * o)).ToArray();
        Backend.MatMulShared(x, rows, weights[0], outputs[0], weights[1], outputs[1], weights[2], outputs[2]);
        for (int i = 0; i < 3; i++)
            AssertBitwiseEqual(separate[i], Download(outputs[i], rows * outFeatures[i]), $"shared matmul output {i}");

        // Two weights only.
        outputs = outFeatures.Select(o => Poisoned(rows * o)).ToArray();
        Backend.MatMulShared(x, rows, weights[2], outputs[2], weights[0], outputs[0]);
        AssertBitwiseEqual(separate[2], Download(outputs[2], rows * outFeatures[2]), "first of two");
        AssertBitwiseEqual(separate[0], Download(outputs[0], rows * outFeatures[0]), "second of two");
    }

    [Theory]
    [MemberData(nameof(FusedShapes))]
    public void MatMulSiluMul_MatchesMatMulsThenSiluMulBitForBit(DType dtype, int rows, int columns)
    {
        const int intermediate = 37;
        var (gate, gateExact) = Weight(dtype, intermediate, columns);
        var (up, upExact) = Weight(dtype, intermediate, columns);
        float[] input = RandomValues(rows * columns);
        ComputeBuffer x = Upload(input);
        ComputeBuffer g = Poisoned(rows * intermediate), u = Poisoned(rows * intermediate);
        Backend.MatMul(x, gate, g, rows);
        Backend.MatMul(x, up, u, rows);
        Backend.SiluMul(g, u, g, rows * intermediate);
        float[] unfused = Download(g, rows * intermediate);

        ComputeBuffer fused = Poisoned(rows * intermediate);
        Backend.MatMulSiluMul(x, gate, up, fused, Poisoned(rows * intermediate), rows);

        AssertBitwiseEqual(unfused, Download(fused, rows * intermediate), "MatMulSiluMul");
        float[] gateReference = [.. ScalarOps.MatMul(input, gateExact, rows, columns, intermediate).Select(v => (float)v)];
        float[] upReference = [.. ScalarOps.MatMul(input, upExact, rows, columns, intermediate).Select(v => (float)v)];
        AssertClose(ScalarOps.SiluMul(gateReference, upReference, rows * intermediate), unfused);
    }

    [Theory]
    [InlineData(1, 4, 4, 16)]
    [InlineData(5, 6, 2, 16)]
    [InlineData(3, 8, 1, 128)]
    public void RopeAndStoreKv_MatchesRopeRopeStoreKvBitForBit(int rows, int heads, int kvHeads, int headDim)
    {
        const int capacity = 48, layers = 2, layer = 1;
        int kvWidth = kvHeads * headDim, prefix = 20;
        WeightTensor frequencies = FloatWeight(InverseFrequencies(headDim, 10000f));
        int[] positions = Enumerable.Range(prefix, rows).ToArray();
        int[] slots = positions.Reverse().ToArray();   // slots need not follow positions (token trees)
        float[] queries = RandomValues(rows * heads * headDim), keys = RandomValues(rows * kvWidth), values = RandomValues(rows * kvWidth);
        float[] probe = RandomValues(heads * headDim, 3f);
        float[] prefixKeys = RandomValues(prefix * kvWidth), prefixValues = RandomValues(prefix * kvWidth);

        (float[] Queries, float[] Keys, float[] Attended) Run(bool fused)
        {
            KvCacheStorage cache = Cache(layers, capacity, kvWidth);
            Backend.StoreKv(cache, layer, Upload(prefixKeys), Upload(prefixValues), Indices([.. Enumerable.Range(0, prefix)]), prefix);
            ComputeBuffer q = Upload(queries), k = Upload(keys), v = Upload(values);
            if (fused)
                Backend.RopeAndStoreKv(q, k, v, Indices(positions), frequencies, cache, layer, Indices(slots), rows, heads, kvHeads, headDim);
            else
            {
                Backend.Rope(q, Indices(positions), frequencies, rows, heads, headDim);
                Backend.Rope(k, Indices(positions), frequencies, rows, kvHeads, headDim);
                Backend.StoreKv(cache, layer, k, v, Indices(slots), rows);
            }
            // What reached the cache, read through attention from the last position (it sees every stored slot).
            ComputeBuffer attended = Poisoned(heads * headDim);
            Backend.TreeAttention(Upload(probe), cache, layer, Indices([prefix + rows - 1]), null, 0, attended, 1, heads, kvHeads, headDim);
            return (Download(q, queries.Length), Download(k, keys.Length), Download(attended, heads * headDim));
        }

        var plain = Run(fused: false);
        var fusedRun = Run(fused: true);
        AssertBitwiseEqual(plain.Queries, fusedRun.Queries, "rotated queries");
        AssertBitwiseEqual(plain.Keys, fusedRun.Keys, "rotated keys");
        AssertBitwiseEqual(plain.Attended, fusedRun.Attended, "attention over the stored keys and values");
    }

    // ---------------------------------------------------------------- Bandwidth probe

    [Fact]
    public void BandwidthProbe_GivesPlausibleFigures()
    {
        if (Backend is not IBandwidthProbe probe)
        {
            Assert.Skip($"the {Backend.Name} backend has no bandwidth probe (an optional capability)");
            return;
        }
        var figures = probe.MeasureBandwidth(64L << 20);
        Assert.InRange(figures.Bytes, 60L << 20, 64L << 20);
        // Between a slow laptop's memory and ten times an H200's.
        Assert.InRange(figures.CopyGigabytesPerSecond, 0.5, 50_000);
        Assert.InRange(figures.ReadGigabytesPerSecond, 0.5, 50_000);
    }

    // ---------------------------------------------------------------- Rope

    [Fact]
    public void Rope_MatchesReference()
    {
        const int heads = 3, headDim = 16;
        int[] positions = [0, 5, 1000, 31999];
        int rows = positions.Length;
        float[] inverseFrequencies = InverseFrequencies(headDim, 10000f);
        float[] x = RandomValues(rows * heads * headDim);
        ComputeBuffer buffer = Upload(x);

        Backend.Rope(buffer, Indices(positions), FloatWeight(inverseFrequencies), rows, heads, headDim);

        AssertClose(ScalarOps.Rope(x, positions, inverseFrequencies, rows, heads, headDim), Download(buffer, x.Length));
    }

    [Fact]
    public void Rope_IsRowInvariant()
    {
        const int heads = 4, headDim = 64, rows = 12, width = heads * headDim;
        WeightTensor frequencies = FloatWeight(InverseFrequencies(headDim, 500000f));
        float[] x = RandomValues(rows * width);
        int[] positions = Enumerable.Range(0, rows).Select(r => 37 * r * r).ToArray();

        ComputeBuffer batch = Upload(x);
        Backend.Rope(batch, Indices(positions), frequencies, rows, heads, headDim);
        float[] batched = Download(batch, rows * width);

        for (int r = 0; r < rows; r++)
        {
            ComputeBuffer single = Upload(x.AsSpan(r * width, width).ToArray());
            Backend.Rope(single, Indices([positions[r]]), frequencies, 1, heads, headDim);
            AssertBitwiseEqual(Download(single, width), batched.AsSpan(r * width, width), $"Rope row {r}");
        }
    }

    // ---------------------------------------------------------------- StoreKv + Attention

    public static TheoryData<int, int, int> AttentionShapes => new()
    {
        { 4, 4, 16 },   // multi-head
        { 6, 2, 16 },   // grouped: three query heads per KV head
        { 8, 1, 24 },   // multi-query
        { 4, 2, 128 },  // Llama head size
        { 2, 1, 256 },  // wide heads (Gemma-style sizes)
    };

    [Theory]
    [MemberData(nameof(AttentionShapes))]
    public void Attention_MatchesReference(int heads, int kvHeads, int headDim)
    {
        const int layers = 2, capacity = 40, layer = 1;
        int kvWidth = kvHeads * headDim;
        KvCacheStorage cache = Cache(layers, capacity, kvWidth);
        // Another layer holding other values must not leak into this one.
        var (otherKeys, otherValues) = StoreRandomPrefix(cache, 0, capacity, kvWidth);
        Assert.NotNull(otherKeys);
        Assert.NotNull(otherValues);
        var (keys, values) = StoreRandomPrefix(cache, layer, 30, kvWidth);

        int[] positions = [0, 7, 29, 12, 29];
        int rows = positions.Length;
        float[] queries = RandomValues(rows * heads * headDim, 3f);
        ComputeBuffer output = Poisoned(queries.Length);

        Backend.TreeAttention(Upload(queries), cache, layer, Indices(positions), null, 0, output, rows, heads, kvHeads, headDim);

        AssertClose(ScalarOps.Attention(queries, keys, values, positions, rows, heads, kvHeads, headDim), Download(output, queries.Length), AttentionTolerance);
    }

    [Fact]
    public void Attention_SeesKeysStoredEarlierInTheSameCall()
    {
        const int heads = 4, kvHeads = 2, headDim = 32, prefix = 9, rows = 5;
        int kvWidth = kvHeads * headDim;
        KvCacheStorage cache = Cache(1, 32, kvWidth);
        var (prefixKeys, prefixValues) = StoreRandomPrefix(cache, 0, prefix, kvWidth);

        float[] newKeys = RandomValues(rows * kvWidth), newValues = RandomValues(rows * kvWidth);
        int[] positions = Enumerable.Range(prefix, rows).ToArray();
        Backend.StoreKv(cache, 0, Upload(newKeys), Upload(newValues), Indices(positions), rows);
        float[] queries = RandomValues(rows * heads * headDim, 3f);
        ComputeBuffer output = Poisoned(queries.Length);

        Backend.TreeAttention(Upload(queries), cache, 0, Indices(positions), null, 0, output, rows, heads, kvHeads, headDim);

        float[] keys = [.. prefixKeys, .. newKeys], values = [.. prefixValues, .. newValues];
        AssertClose(ScalarOps.Attention(queries, keys, values, positions, rows, heads, kvHeads, headDim), Download(output, queries.Length), AttentionTolerance);
    }

    [Fact]
    public void Attention_LongContext_MatchesReference()
    {
        const int capacity = 32768, heads = 2, kvHeads = 1, headDim = 8;
        KvCacheStorage cache = Cache(1, capacity, kvHeads * headDim);
        var (keys, values) = StoreRandomPrefix(cache, 0, capacity, kvHeads * headDim);
        int[] positions = [capacity - 1, 20000];
        float[] queries = RandomValues(positions.Length * heads * headDim, 4f);
        ComputeBuffer output = Poisoned(queries.Length);

        Backend.TreeAttention(Upload(queries), cache, 0, Indices(positions), null, 0, output, positions.Length, heads, kvHeads, headDim);

        AssertClose(ScalarOps.Attention(queries, keys, values, positions, positions.Length, heads, kvHeads, headDim), Download(output, queries.Length), AttentionTolerance);
    }

    [Theory]
    [InlineData(1, 64)]
    [InlineData(2, 64)]
    [InlineData(3, 64)]
    [InlineData(4, 64)]
    [InlineData(5, 64)]
    [InlineData(8, 64)]
    [InlineData(12, 64)]
    [InlineData(16, 64)]
    [InlineData(64, 64)]
    [InlineData(8, 128)]
    [InlineData(33, 128)]
    [InlineData(8, 256)]
    [InlineData(3, 40)]
    public void Attention_IsRowInvariant(int rows, int headDim)
    {
        // Positions from 58 straddle position 64, a key-block boundary of the CUDA kernels (blocks of 32 or 64 keys); 12 rows
        // and more make several row groups on backends that group rows. Head widths: Llama's, a wide one, and one whose
        // rows are not whole 16-byte vectors of an F16 cache (the CUDA kernels stage keys in shared memory only when they are).
        const int heads = 8, kvHeads = 2, prefix = 58, capacity = 128;
        int kvWidth = kvHeads * headDim, width = heads * headDim;
        float[] prefixKeys = RandomValues(prefix * kvWidth), prefixValues = RandomValues(prefix * kvWidth);
        float[] newKeys = RandomValues(rows * kvWidth), newValues = RandomValues(rows * kvWidth);
        float[] queries = RandomValues(rows * width, 3f);
        int[] positions = Enumerable.Range(prefix, rows).ToArray();
        int[] prefixSlots = Enumerable.Range(0, prefix).ToArray();

        // k queries verified together, their keys stored by one StoreKv of the same rows.
        KvCacheStorage batchCache = Cache(1, capacity, kvWidth);
        Backend.StoreKv(batchCache, 0, Upload(prefixKeys), Upload(prefixValues), Indices(prefixSlots), prefix);
        Backend.StoreKv(batchCache, 0, Upload(newKeys), Upload(newValues), Indices(positions), rows);
        ComputeBuffer batch = Poisoned(rows * width);
        Backend.TreeAttention(Upload(queries), batchCache, 0, Indices(positions), null, 0, batch, rows, heads, kvHeads, headDim);
        float[] batched = Download(batch, rows * width);

        // The same tokens decoded one at a time.
        KvCacheStorage stepCache = Cache(1, capacity, kvWidth);
        Backend.StoreKv(stepCache, 0, Upload(prefixKeys), Upload(prefixValues), Indices(prefixSlots), prefix);
        for (int r = 0; r < rows; r++)
        {
            Backend.StoreKv(stepCache, 0, Upload(newKeys.AsSpan(r * kvWidth, kvWidth).ToArray()),
                Upload(newValues.AsSpan(r * kvWidth, kvWidth).ToArray()), Indices([positions[r]]), 1);
            ComputeBuffer single = Poisoned(width);
            Backend.TreeAttention(Upload(queries.AsSpan(r * width, width).ToArray()), stepCache, 0, Indices([positions[r]]), null, 0, single, 1, heads, kvHeads, headDim);
            AssertBitwiseEqual(Download(single, width), batched.AsSpan(r * width, width), $"Attention row {r} of {rows}");
        }
    }

    /// <summary>
    /// Mistral's sliding window: each row attends to the keys of positions (p − window, p] only, with the bits of a plain
    /// attention over a cache holding just those keys (the same keys in the same order), whatever the other rows; a
    /// backend without sliding-window attention refuses the window rather than attending to everything.
    /// </summary>
    [Fact]
    public void Attention_SlidingWindow_EqualsAttentionOverTheWindowAlone()
    {
        const int heads = 4, kvHeads = 2, headDim = 64, capacity = 80, window = 7, stored = 70;
        int kvWidth = kvHeads * headDim, width = heads * headDim;
        float[] keys = RandomValues(stored * kvWidth), values = RandomValues(stored * kvWidth);
        KvCacheStorage cache = Cache(1, capacity, kvWidth);
        Backend.StoreKv(cache, 0, Upload(keys), Upload(values), Indices(Enumerable.Range(0, stored).ToArray()), stored);
        int[] positions = [0, 3, 6, 7, 31, 32, 33, 63, 64, 69];   // inside the first window, at its edge, across key blocks
        int rows = positions.Length;
        float[] queries = RandomValues(rows * width, 3f);
        if (!Backend.SupportsSlidingWindow)
        {
            Assert.ThrowsAny<ArgumentException>(() => Backend.TreeAttention(Upload(queries), cache, 0, Indices(positions), null, 0,
                Allocate(rows * width), rows, heads, kvHeads, headDim, slidingWindow: window));
            return;
        }
        ComputeBuffer batch = Poisoned(rows * width);
        Backend.TreeAttention(Upload(queries), cache, 0, Indices(positions), null, 0, batch, rows, heads, kvHeads, headDim, slidingWindow: window);
        float[] batched = Download(batch, rows * width);
        for (int r = 0; r < rows; r++)
        {
            int first = Math.Max(0, positions[r] - window + 1), count = positions[r] - first + 1;
            KvCacheStorage alone = Cache(1, capacity, kvWidth);
            Backend.StoreKv(alone, 0, Upload(keys.AsSpan(first * kvWidth, count * kvWidth).ToArray()),
                Upload(values.AsSpan(first * kvWidth, count * kvWidth).ToArray()), Indices(Enumerable.Range(0, count).ToArray()), count);
            ComputeBuffer single = Poisoned(width);
            Backend.TreeAttention(Upload(queries.AsSpan(r * width, width).ToArray()), alone, 0, Indices([count - 1]), null, 0, single, 1, heads, kvHeads, headDim);
            AssertBitwiseEqual(Download(single, width), batched.AsSpan(r * width, width), $"row {r} at position {positions[r]}, window {window}");
        }
        // A window wider than every position is plain attention.
        ComputeBuffer wide = Poisoned(rows * width), plain = Poisoned(rows * width);
        Backend.TreeAttention(Upload(queries), cache, 0, Indices(positions), null, 0, wide, rows, heads, kvHeads, headDim, slidingWindow: 4096);
        Backend.TreeAttention(Upload(queries), cache, 0, Indices(positions), null, 0, plain, rows, heads, kvHeads, headDim);
        AssertBitwiseEqual(Download(plain, rows * width), Download(wide, rows * width), "window wider than the context");
    }

    /// <summary>
    /// A token tree verified in one call sees, per node, exactly what a plain decode of that node's path sees: every node's
    /// output equals (bit for bit) a one-row plain (window 0) <see cref="IComputeBackend.TreeAttention"/> after storing its path at consecutive
    /// positions — whatever the row grouping (11 nodes: the CUDA kernels' 8-row groups split the tree).
    /// </summary>
    [Theory]
    [InlineData(11)]
    [InlineData(64)]
    public void TreeAttention_EachNodeSeesItsPathAsAPlainDecodeDoes(int nodes)
    {
        const int heads = 8, kvHeads = 2, headDim = 64, prefix = 61, capacity = 160;
        // Breadth-first: node 0 and 1 on the first level, then their children; the tree crosses position 64. The larger
        // tree is random, each node's parent an earlier node (or none), so its levels are uneven and deep.
        int[] parents = nodes == 11 ? [-1, -1, 0, 0, 1, 2, 2, 3, 5, 5, 8] : RandomTree(nodes, new Random(nodes));
        int kvWidth = kvHeads * headDim, width = heads * headDim;
        int[] depth = new int[nodes];
        for (int n = 0; n < nodes; n++) depth[n] = parents[n] < 0 ? 0 : depth[parents[n]] + 1;
        int window = depth.Max() + 1;
        int[] path(int n) => parents[n] < 0 ? [n] : [.. path(parents[n]), n];
        // Tree nodes live in slots after a gap (as a scheduler may place them), not at their logical positions.
        int slotOf(int n) => prefix + 8 + n;
        int[] positions = depth.Select(d => prefix + d).ToArray();
        // Row n's window: its path backwards (itself first), then keys before the tree at their own positions.
        int[] recent = new int[nodes * window];
        for (int n = 0; n < nodes; n++)
        {
            int[] p = path(n);
            for (int j = 0; j < window; j++)
                recent[n * window + j] = j < p.Length ? slotOf(p[p.Length - 1 - j]) : positions[n] - j;
        }

        float[] prefixKeys = RandomValues(prefix * kvWidth), prefixValues = RandomValues(prefix * kvWidth);
        float[] nodeKeys = RandomValues(nodes * kvWidth), nodeValues = RandomValues(nodes * kvWidth);
        float[] queries = RandomValues(nodes * width, 3f);
        int[] prefixSlots = Enumerable.Range(0, prefix).ToArray();

        KvCacheStorage treeCache = Cache(1, capacity, kvWidth);
        Backend.StoreKv(treeCache, 0, Upload(prefixKeys), Upload(prefixValues), Indices(prefixSlots), prefix);
        Backend.StoreKv(treeCache, 0, Upload(nodeKeys), Upload(nodeValues), Indices(Enumerable.Range(0, nodes).Select(slotOf).ToArray()), nodes);
        ComputeBuffer tree = Poisoned(nodes * width);
        Backend.TreeAttention(Upload(queries), treeCache, 0, Indices(positions), Indices(recent), window, tree, nodes, heads, kvHeads, headDim);
        float[] treeOutput = Download(tree, nodes * width);

        for (int n = 0; n < nodes; n++)
        {
            // The plain decode of this node's path: its nodes' keys at consecutive positions after the prefix.
            KvCacheStorage pathCache = Cache(1, capacity, kvWidth);
            Backend.StoreKv(pathCache, 0, Upload(prefixKeys), Upload(prefixValues), Indices(prefixSlots), prefix);
            int[] p = path(n);
            for (int d = 0; d < p.Length; d++)
                Backend.StoreKv(pathCache, 0, Upload(nodeKeys.AsSpan(p[d] * kvWidth, kvWidth).ToArray()),
                    Upload(nodeValues.AsSpan(p[d] * kvWidth, kvWidth).ToArray()), Indices([prefix + d]), 1);
            ComputeBuffer single = Poisoned(width);
            Backend.TreeAttention(Upload(queries.AsSpan(n * width, width).ToArray()), pathCache, 0, Indices([positions[n]]), null, 0, single, 1, heads,
                kvHeads, headDim);
            AssertBitwiseEqual(Download(single, width), treeOutput.AsSpan(n * width, width), $"tree node {n} (depth {depth[n]})");
        }

        // Window 0 is plain attention; a slot outside the cache, or a map shorter than rows × window, is refused.
        ComputeBuffer plain = Poisoned(nodes * width), windowless = Poisoned(nodes * width);
        Backend.TreeAttention(Upload(queries), treeCache, 0, Indices(positions), null, 0, plain, nodes, heads, kvHeads, headDim);
        Backend.TreeAttention(Upload(queries), treeCache, 0, Indices(positions), Indices([0]), 0, windowless, nodes, heads, kvHeads, headDim);
        AssertBitwiseEqual(Download(plain, nodes * width), Download(windowless, nodes * width), "window 0");
        int[] outside = (int[])recent.Clone();
        outside[window] = capacity;
        Assert.ThrowsAny<ArgumentException>(() => Backend.TreeAttention(Upload(queries), treeCache, 0, Indices(positions), Indices(outside),
            window, Allocate(nodes * width), nodes, heads, kvHeads, headDim));
        Assert.ThrowsAny<ArgumentException>(() => Backend.TreeAttention(Upload(queries), treeCache, 0, Indices(positions), Indices(recent),
            window + 1, Allocate(nodes * width), nodes, heads, kvHeads, headDim));
    }

    // Parents of a random tree in breadth-first-compatible order: each node's parent is an earlier node or none (a root).
    private static int[] RandomTree(int nodes, Random random)
    {
        var parents = new int[nodes];
        for (int n = 0; n < nodes; n++) parents[n] = n == 0 ? -1 : random.Next(-1, n);
        return parents;
    }

    /// <summary>
    /// Several sequences in one cache and one call (batched decoding and verification): each row, whatever its neighbours'
    /// sequences and lengths, gets the bits of a one-row plain (window 0) <see cref="IComputeBackend.TreeAttention"/> over a
    /// cache holding its sequence alone, and a sequence id outside the cache is refused. Rows of 3 sequences at different
    /// lengths, interleaved (the CUDA kernels' row groups cut at every change of sequence), and in runs of one sequence
    /// longer than a row group (cut by the group's size, 20 rows of one sequence: three groups of 8, 8 and 4).
    /// </summary>
    [Theory]
    [InlineData(new[] { 0, 1, 1, 2, 0, 2, 2, 1, 0, 0, 2 })]
    [InlineData(new[] { 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1 })]
    [InlineData(new[] { 1, 1, 1, 0, 0, 0, 2, 2, 2 })]
    public void TreeAttention_RowsOfSeveralSequencesEachSeeTheirOwn(int[] rowSequence)
    {
        const int heads = 8, kvHeads = 2, headDim = 64, capacity = 96, sequences = 3;
        int kvWidth = kvHeads * headDim, width = heads * headDim;
        int[] lengths = [70, 5, 33];                       // positions already in each sequence before this pass
        int rows = rowSequence.Length;
        var next = (int[])lengths.Clone();
        int[] positions = rowSequence.Select(s => next[s]++).ToArray();

        float[][] keys = new float[sequences][], values = new float[sequences][];
        KvCacheStorage shared = Track(Backend.AllocateKvCache(1, capacity, kvWidth, sequences));
        Assert.Equal(sequences * capacity, shared.Slots);
        for (int s = 0; s < sequences; s++)
        {
            keys[s] = RandomValues(next[s] * kvWidth);
            values[s] = RandomValues(next[s] * kvWidth);
            Backend.StoreKv(shared, 0, Upload(keys[s]), Upload(values[s]), Indices(Enumerable.Range(s * capacity, next[s]).ToArray()), next[s]);
        }
        float[] queries = RandomValues(rows * width, 3f);
        ComputeBuffer batch = Poisoned(rows * width);
        Backend.TreeAttention(Upload(queries), shared, 0, Indices(positions), Indices([0]), 0, batch, rows, heads, kvHeads, headDim,
            Indices(rowSequence));
        float[] batched = Download(batch, rows * width);

        for (int r = 0; r < rows; r++)
        {
            int s = rowSequence[r];
            KvCacheStorage alone = Cache(1, capacity, kvWidth);
            Backend.StoreKv(alone, 0, Upload(keys[s]), Upload(values[s]), Indices(Enumerable.Range(0, next[s]).ToArray()), next[s]);
            ComputeBuffer single = Poisoned(width);
            Backend.TreeAttention(Upload(queries.AsSpan(r * width, width).ToArray()), alone, 0, Indices([positions[r]]), null, 0, single, 1, heads, kvHeads, headDim);
            AssertBitwiseEqual(Download(single, width), batched.AsSpan(r * width, width), $"row {r} (sequence {s}, position {positions[r]})");
        }

        int[] outside = (int[])rowSequence.Clone();
        outside[4] = sequences;
        Assert.ThrowsAny<ArgumentException>(() => Backend.TreeAttention(Upload(queries), shared, 0, Indices(positions), Indices([0]), 0,
            Allocate(rows * width), rows, heads, kvHeads, headDim, Indices(outside)));
        int[] tooFar = (int[])positions.Clone();
        tooFar[0] = capacity;   // a position past one sequence's room, though the storage has more slots
        Assert.ThrowsAny<ArgumentException>(() => Backend.TreeAttention(Upload(queries), shared, 0, Indices(tooFar), Indices([0]), 0,
            Allocate(rows * width), rows, heads, kvHeads, headDim, Indices(rowSequence)));
    }

    /// <summary>
    /// Top-K with probabilities against the host reference: the same ids in the same order (ties: lowest id first; −inf and
    /// NaN never taken; −1 where a row runs out), probabilities within float rounding — rows of random logits, of heavy
    /// ties, and of mostly −inf, at a vocabulary that is not a multiple of the block.
    /// </summary>
    [Fact]
    public void TopKWithProbabilities_MatchesTheReference()
    {
        const int vocab = 1003, k = 10, rows = 4;
        var random = new Random(31);
        float[] logits = RandomValues(rows * vocab, 4f);
        for (int v = 0; v < vocab; v++) logits[vocab + v] = random.Next(6);               // row 1: six values, many ties
        for (int v = 0; v < vocab; v++) logits[2 * vocab + v] = float.NegativeInfinity;   // row 2: three finite logits and a NaN
        logits[2 * vocab + 500] = 1f; logits[2 * vocab + 7] = 1f; logits[2 * vocab + 900] = -2f; logits[2 * vocab + 3] = float.NaN;
        logits[3 * vocab + 1002] = 50f;                                                   // row 3: one dominant logit, the last id
        var tokens = new int[rows * k];
        var probabilities = new float[rows * k];
        Backend.TopKWithProbabilities(Upload(logits), rows, vocab, k, tokens, probabilities);
        for (int r = 0; r < rows; r++)
        {
            var expectedTokens = new int[k];
            var expectedProbabilities = new float[k];
            TopKReference.Select(logits.AsSpan(r * vocab, vocab), expectedTokens, expectedProbabilities);
            Assert.Equal(expectedTokens, tokens.AsSpan(r * k, k).ToArray());
            for (int i = 0; i < k; i++)
            {
                // A NaN logit makes a row's softmax NaN on every backend (as in ArgmaxWithProbability); ids stay exact.
                float expected = expectedProbabilities[i], actual = probabilities[r * k + i];
                Assert.True(float.IsNaN(expected) ? float.IsNaN(actual) : Math.Abs(expected - actual) <= 1e-6f + 1e-5f * expected,
                    $"row {r}, rank {i}: probability {actual} vs {expected}");
            }
        }
        Assert.Equal([7, 500, 900, -1, -1, -1, -1, -1, -1, -1], tokens.AsSpan(2 * k, k).ToArray());
        Assert.Equal(1002, tokens[3 * k]);
        Assert.Throws<ArgumentOutOfRangeException>(() => Backend.TopKWithProbabilities(Upload(logits), rows, vocab, 0, tokens, probabilities));
    }

    /// <summary>Gather/scatter of rows: each listed row lands where asked, every other destination row keeps its values; bad rows are refused.</summary>
    [Fact]
    public void CopyRows_MovesEachListedRowAndNothingElse()
    {
        const int width = 37;
        float[] sourceValues = RandomValues(9 * width), destinationValues = RandomValues(6 * width);
        ComputeBuffer source = Upload(sourceValues), destination = Upload(destinationValues);
        int[] from = [8, 0, 3, 3], to = [1, 5, 0, 2];
        Backend.CopyRows(source, Indices(from), destination, Indices(to), from.Length, width);
        float[] expected = (float[])destinationValues.Clone();
        for (int i = 0; i < from.Length; i++) sourceValues.AsSpan(from[i] * width, width).CopyTo(expected.AsSpan(to[i] * width, width));
        AssertBitwiseEqual(expected, Download(destination, 6 * width), "gathered rows");

        // Within one buffer: disjoint rows move; a row both read and written, or one outside a buffer, is refused.
        Backend.CopyRows(source, Indices([1, 2]), source, Indices([6, 7]), 2, width);
        float[] inPlace = Download(source, 9 * width);
        AssertBitwiseEqual(sourceValues.AsSpan(1 * width, 2 * width).ToArray(), inPlace.AsSpan(6 * width, 2 * width), "rows moved within a buffer");
        Assert.ThrowsAny<ArgumentException>(() => Backend.CopyRows(source, Indices([1, 2]), source, Indices([2, 3]), 2, width));
        Assert.ThrowsAny<ArgumentException>(() => Backend.CopyRows(source, Indices([9]), destination, Indices([0]), 1, width));
        Assert.ThrowsAny<ArgumentException>(() => Backend.CopyRows(source, Indices([0]), destination, Indices([6]), 1, width));
    }

    /// <summary>Packing a tree path: after the moves, attention over the cache equals attention over one written in place.</summary>
    [Fact]
    public void MoveKvSlots_PacksSlotsInOrderInEveryLayer()
    {
        const int layers = 2, heads = 4, kvHeads = 2, headDim = 16, capacity = 24, prefix = 8;
        int kvWidth = kvHeads * headDim, width = heads * headDim;
        int[] from = [10, 12, 15], to = [8, 9, 10];   // move 2 reads slot 15 after move 0 read slot 10 and before it is overwritten
        int total = prefix + to.Length;
        var keys = new float[layers][];
        var values = new float[layers][];
        KvCacheStorage moved = Cache(layers, capacity, kvWidth), expected = Cache(layers, capacity, kvWidth);
        for (int layer = 0; layer < layers; layer++)
        {
            keys[layer] = RandomValues(capacity * kvWidth);
            values[layer] = RandomValues(capacity * kvWidth);
            Backend.StoreKv(moved, layer, Upload(keys[layer]), Upload(values[layer]), Indices(Enumerable.Range(0, capacity).ToArray()), capacity);
            // The packed layout: slots [0, prefix) as they were, then from[i]'s rows at to[i].
            int[] source = [.. Enumerable.Range(0, prefix), .. from];
            float[] k = source.SelectMany(slot => keys[layer].AsSpan(slot * kvWidth, kvWidth).ToArray()).ToArray();
            float[] v = source.SelectMany(slot => values[layer].AsSpan(slot * kvWidth, kvWidth).ToArray()).ToArray();
            Backend.StoreKv(expected, layer, Upload(k), Upload(v), Indices(Enumerable.Range(0, total).ToArray()), total);
        }
        Backend.MoveKvSlots(moved, from, to);

        float[] queries = RandomValues(width, 3f);
        for (int layer = 0; layer < layers; layer++)
        {
            ComputeBuffer a = Poisoned(width), b = Poisoned(width);
            Backend.TreeAttention(Upload(queries), moved, layer, Indices([total - 1]), null, 0, a, 1, heads, kvHeads, headDim);
            Backend.TreeAttention(Upload(queries), expected, layer, Indices([total - 1]), null, 0, b, 1, heads, kvHeads, headDim);
            AssertBitwiseEqual(Download(b, width), Download(a, width), $"layer {layer} after the moves");
        }

        Assert.ThrowsAny<ArgumentException>(() => Backend.MoveKvSlots(moved, [5], [6]));          // destination past its source
        Assert.ThrowsAny<ArgumentException>(() => Backend.MoveKvSlots(moved, [9, 7], [8, 6]));    // destinations descending
        Assert.ThrowsAny<ArgumentException>(() => Backend.MoveKvSlots(moved, [capacity], [0]));   // outside the cache
        Assert.ThrowsAny<ArgumentException>(() => Backend.MoveKvSlots(moved, [3, 4], [3]));       // unpaired
    }

    [Fact]
    public void StoreKvAndAttention_OutOfRange_Throw()
    {
        KvCacheStorage cache = Cache(2, 8, 16);
        ComputeBuffer kv = Allocate(16);
        Assert.ThrowsAny<ArgumentException>(() => Backend.StoreKv(cache, 0, kv, kv, Indices([8]), 1));
        Assert.ThrowsAny<ArgumentException>(() => Backend.StoreKv(cache, 0, kv, kv, Indices([-1]), 1));
        Assert.ThrowsAny<ArgumentException>(() => Backend.StoreKv(cache, 2, kv, kv, Indices([0]), 1));
        Assert.ThrowsAny<ArgumentException>(() => Backend.TreeAttention(Allocate(32), cache, 0, Indices([8]), null, 0, Allocate(32), 1, 2, 1, 16));
        Assert.ThrowsAny<ArgumentException>(() => Backend.TreeAttention(Allocate(32), cache, 0, Indices([0]), null, 0, Allocate(31), 1, 2, 1, 16));
        Assert.ThrowsAny<ArgumentException>(() => Backend.TreeAttention(Allocate(64), cache, 0, Indices([0]), null, 0, Allocate(64), 1, 4, 2, 16));
        // A tree window needs its slots; only window 0 (plain causal attention) goes without.
        Assert.ThrowsAny<ArgumentException>(() => Backend.TreeAttention(Allocate(32), cache, 0, Indices([0]), null, 2, Allocate(32), 1, 2, 1, 16));
    }

    // ---------------------------------------------------------------- SiluMul, Argmax, buffers

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(1003)]
    [InlineData(70001)]
    public void SiluMul_MatchesReference(int count)
    {
        float[] gate = RandomValues(count, 12f), up = RandomValues(count, 2f);
        ComputeBuffer output = Poisoned(count);

        Backend.SiluMul(Upload(gate), Upload(up), output, count);

        float[] actual = Download(output, count);
        AssertClose(ScalarOps.SiluMul(gate, up, count), actual);

        // Elementwise, so a prefix of the call gives the same bits (row invariance of [rows, width] calls).
        int prefix = Math.Max(1, count / 3);
        ComputeBuffer partial = Poisoned(prefix);
        Backend.SiluMul(Upload(gate[..prefix]), Upload(up[..prefix]), partial, prefix);
        AssertBitwiseEqual(actual.AsSpan(0, prefix).ToArray(), Download(partial, prefix), "SiluMul prefix");
    }

    [Fact]
    public void SiluMul_InPlaceOverGate_MatchesReference()
    {
        const int count = 301;
        float[] gate = RandomValues(count, 8f), up = RandomValues(count);
        ComputeBuffer gateBuffer = Upload(gate);

        Backend.SiluMul(gateBuffer, Upload(up), gateBuffer, count);

        AssertClose(ScalarOps.SiluMul(gate, up, count), Download(gateBuffer, count));
    }

    [Fact]
    public void ArgmaxWithProbability_MatchesReference()
    {
        const int rows = 4, vocab = 5000;
        float[] logits = RandomValues(rows * vocab, 8f);
        logits[vocab + 4321] = 30f;             // row 1: one confident token
        logits[2 * vocab + 17] = 9f;            // row 2: a tie, lowest index wins
        logits[2 * vocab + 4000] = 9f;
        logits.AsSpan(3 * vocab, vocab).Fill(-2f); // row 3: all equal, index 0 at probability 1/vocab
        var tokens = new int[rows];
        var probabilities = new float[rows];

        Backend.ArgmaxWithProbability(Upload(logits), rows, vocab, tokens, probabilities);

        var expected = ScalarOps.ArgmaxWithProbability(logits, rows, vocab);
        Assert.Equal(17, expected[2].Index);
        for (int r = 0; r < rows; r++)
        {
            Assert.Equal(expected[r].Index, tokens[r]);
            Assert.True(Math.Abs(probabilities[r] - expected[r].Probability) <= Tolerance * expected[r].Probability,
                $"row {r}: probability {probabilities[r]}, expected {expected[r].Probability}");
        }
    }

    /// <summary>
    /// The premise of the generation loop's once-per-step check (FiniteLogits): a row holding a NaN or an infinity gets a
    /// NaN probability, so the few floats a step copies back reveal it; a finite row never does.
    /// </summary>
    [Fact]
    public void ArgmaxWithProbability_NonFiniteRowsGiveANaNProbability()
    {
        const int rows = 5, vocab = 3000;
        float[] logits = RandomValues(rows * vocab, 4f);
        logits[0 * vocab + 1234] = float.NaN;                          // one NaN among finite logits
        logits[1 * vocab + 2999] = float.PositiveInfinity;             // one +inf
        logits.AsSpan(2 * vocab, vocab).Fill(float.NaN);               // every logit NaN
        logits.AsSpan(3 * vocab, vocab).Fill(float.NegativeInfinity);  // every logit -inf
        var tokens = new int[rows];
        var probabilities = new float[rows];

        Backend.ArgmaxWithProbability(Upload(logits), rows, vocab, tokens, probabilities);

        for (int r = 0; r < 4; r++) Assert.True(float.IsNaN(probabilities[r]), $"row {r}: probability {probabilities[r]}, expected NaN");
        Assert.True(float.IsFinite(probabilities[4]) && probabilities[4] > 0, $"finite row: probability {probabilities[4]}");
        Assert.All(tokens, t => Assert.InRange(t, 0, vocab - 1));
    }

    [Fact]
    public void UploadCopyDownload_RoundTrip()
    {
        float[] values = RandomValues(100);
        ComputeBuffer a = Allocate(100), b = Poisoned(120);
        Backend.Upload(values, a);
        Backend.Copy(a, 10, b, 50, 60);
        Backend.Synchronize();

        float[] copied = new float[60];
        Backend.Download(b, 50, copied);
        AssertBitwiseEqual(values.AsSpan(10, 60), copied, "copied range");
        Assert.ThrowsAny<ArgumentException>(() => Backend.Copy(a, 50, b, 0, 51));
        Assert.ThrowsAny<ArgumentException>(() => Backend.Copy(a, 0, b, 61, 60));
        Assert.ThrowsAny<ArgumentException>(() => Backend.Upload(values, a, 1));
        Assert.ThrowsAny<ArgumentException>(() => Backend.Download(a, 1, new float[100]));
    }

    // ---------------------------------------------------------------- helpers

    protected float[] RandomValues(int count, float scale = 1f)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
            values[i] = (float)(_random.NextDouble() * 2 - 1) * scale;
        return values;
    }

    protected static float[] InverseFrequencies(int headDim, float theta)
    {
        var frequencies = new float[headDim / 2];
        for (int i = 0; i < frequencies.Length; i++)
            frequencies[i] = 1f / MathF.Pow(theta, 2f * i / headDim);
        return frequencies;
    }

    protected T Track<T>(T resource) where T : IDisposable
    {
        _resources.Add(resource);
        return resource;
    }

    protected ComputeBuffer Allocate(int length) => Track(Backend.Allocate(length));

    protected ComputeBuffer Upload(float[] values)
    {
        ComputeBuffer buffer = Allocate(values.Length);
        Backend.Upload(values, buffer);
        return buffer;
    }

    protected ComputeBuffer Poisoned(int length)
    {
        ComputeBuffer buffer = Allocate(length);
        Poison(buffer, length);
        return buffer;
    }

    protected void Poison(ComputeBuffer buffer, int length)
    {
        var nan = new float[length];
        nan.AsSpan().Fill(float.NaN);
        Backend.Upload(nan, buffer);
    }

    protected float[] Download(ComputeBuffer buffer, int length)
    {
        var values = new float[length];
        Backend.Download(buffer, 0, values);
        return values;
    }

    protected IndexBuffer Indices(int[] values)
    {
        IndexBuffer buffer = Track(Backend.AllocateIndices(values.Length));
        Backend.Upload(values, buffer);
        return buffer;
    }

    protected KvCacheStorage Cache(int layers, int capacity, int kvWidth) =>
        Track(Backend.AllocateKvCache(layers, capacity, kvWidth));

    /// <summary>Random keys and values in slots [0, count) of a layer, returned as <c>[slot][kvWidth]</c>.</summary>
    protected (float[] Keys, float[] Values) StoreRandomPrefix(KvCacheStorage cache, int layer, int count, int kvWidth)
    {
        float[] keys = RandomValues(count * kvWidth), values = RandomValues(count * kvWidth);
        Backend.StoreKv(cache, layer, Upload(keys), Upload(values), Indices(Enumerable.Range(0, count).ToArray()), count);
        return (keys, values);
    }

    /// <summary>A random <c>[rows, columns]</c> weight stored as <paramref name="dtype"/>, viewed in place, and its exact F32 values.</summary>
    protected (WeightTensor Weight, float[] Exact) Weight(DType dtype, int rows, int columns)
    {
        byte[] bytes = DTypeConversion.FromFloat32(dtype, RandomValues(rows * columns));
        var exact = new float[rows * columns];
        DTypeConversion.ToFloat32(dtype, bytes, exact);
        TensorView view = _tensors.Create($"w{_resources.Count}", dtype, [rows, columns], bytes);
        return (Track(Backend.LoadWeight(view, rows, columns)), exact);
    }

    protected WeightTensor FloatWeight(float[] values) =>
        Track(Backend.LoadWeight("computed", values, 1, values.Length));

    protected static void AssertClose(double[] expected, float[] actual, double tolerance = Tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        double sumOfSquares = 0;
        foreach (double e in expected)
            sumOfSquares += e * e;
        double floor = Math.Sqrt(sumOfSquares / Math.Max(expected.Length, 1));
        for (int i = 0; i < expected.Length; i++)
        {
            double error = Math.Abs(actual[i] - expected[i]);
            // Written as !(≤) so that NaN (an unwritten, poisoned element) fails.
            if (!(error <= tolerance * Math.Max(Math.Abs(expected[i]), floor)))
                Assert.Fail($"element {i}: {actual[i]:R}, expected {expected[i]:R} (error {error:E2}, scale {Math.Max(Math.Abs(expected[i]), floor):E2})");
        }
    }

    protected static void AssertBitwiseEqual(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (BitConverter.SingleToUInt32Bits(expected[i]) != BitConverter.SingleToUInt32Bits(actual[i]))
                Assert.Fail($"{what}, element {i}: {actual[i]:R} differs from {expected[i]:R}");
        }
    }
}
