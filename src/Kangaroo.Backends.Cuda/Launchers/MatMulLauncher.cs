using System.Collections.Concurrent;
using Kangaroo.Cuda;
using Kangaroo.Weights;

using static Kangaroo.Backends.BackendArguments;
using static Kangaroo.Backends.Cuda.Launchers.KernelParameter;

namespace Kangaroo.Backends.Cuda.Launchers;

/// <summary>
/// matmul.cu: MatMul, MatMulShared and MatMulSiluMul, each one launch of a grid that fits the GPU at once. F16 and BF16
/// weights take the CUDA-core kernels, or, where the backend asks for them, the tensor-core kernels (every row count,
/// decode included) on matrices packed into their tile layout at load; F32 weights always the CUDA-core kernels.
/// </summary>
internal sealed class MatMulLauncher
{
    /// <summary>Threads per block: each thread owns every MATMUL_THREADS-th weight vector of the tile's rows.</summary>
    public static readonly KernelDefine Threads = new("MATMUL_THREADS", 128);
    /// <summary>
    /// Weight rows per block tile for batches. Tile width changes only which block computes a weight row, never the order
    /// of its sum, so the batch and one-row kernels may differ in it and still agree bit for bit.
    /// </summary>
    public static readonly KernelDefine Features = new("FEATURES", 4);
    /// <summary>Weight rows per block tile of the one-row (decode) kernels.</summary>
    public static readonly KernelDefine FeaturesOneRow = new("FEATURES_R1", 2);

    /// <summary>
    /// Warps per block of the tensor-core kernels. They split K between them (warp w takes chunks w, w + MMA_WARPS, …), so
    /// this fixes the order of every sum: it is one constant for all row counts, never chosen per call.
    /// </summary>
    public static readonly KernelDefine MmaWarps = new("MMA_WARPS", 8);

    /// <summary>
    /// 16-byte weight vectors per thread and weight row in one K chunk of the tensor-core kernels: the chunk is
    /// 32 · MMA_VECTORS wide. It fixes the order of every sum (a shape constant, like MMA_WARPS) and the tile layout that
    /// F16/BF16 matrices are packed into at load.
    /// </summary>
    public static readonly KernelDefine MmaVectors = new("MMA_VECTORS", 2);

    /// <summary>
    /// m-tiles per task in the widest tensor-core variant (more than 16 rows; matmul_silu half as many gate/up pairs, at
    /// least one): each activation row is read and split once per 16 · this many weight rows. The narrower variants keep
    /// one m-tile (pair) per task, measured faster up to 16 rows (bench/RESULTS.md). It changes who computes what, never
    /// the order of a sum.
    /// </summary>
    public static readonly KernelDefine MmaWideTiles = new("MMA_WIDE_TILES", 2);

    /// <summary>Weight rows per m-tile of the tensor-core kernels (mma.m16n8k16's M).</summary>
    private const int MmaTileRows = 16;

    /// <summary>Threads per block of the tile layout's one-thread-per-element kernels (repack, embedding gather).</summary>
    private const int LayoutThreads = 256;

    /// <summary>
    /// Variants of the tensor-core kernels by rows per pass (one row, then 1, 2 and 4 n-tiles), with the most rows each
    /// takes in one pass. They differ in who computes what, never in the order of a sum.
    /// </summary>
    private static readonly (string Suffix, int Rows)[] MmaVariants = [("_mma_r1", 1), ("_mma_n1", 8), ("_mma_n2", 16), ("_mma_n4", 32)];

    public static IReadOnlyList<KernelDefine> Defines => [Threads, Features, FeaturesOneRow, MmaWarps, MmaVectors, MmaWideTiles];

    private static readonly DType[] TensorCoreTypes = [DType.F16, DType.BF16];
    private static readonly string[] MmaSuffixes = [.. MmaVariants.Select(v => v.Suffix)];

    // x, rows, columns, then (weight, output, output width) for each of three targets.
    private static readonly KernelSignature MatMulKernel = new(
        [.. KernelSignature.Names("matmul", KernelSignature.WeightTypes, ["", "_r1"]), .. KernelSignature.Names("matmul", TensorCoreTypes, MmaSuffixes)],
        Pointer, Int, Int, Pointer, Pointer, Int, Pointer, Pointer, Int, Pointer, Pointer, Int);
    private static readonly KernelSignature MatMulSiluKernel = new(
        [.. KernelSignature.Names("matmul_silu", KernelSignature.WeightTypes, ["", "_r1"]), .. KernelSignature.Names("matmul_silu", TensorCoreTypes, MmaSuffixes)],
        Pointer, Int, Int, Pointer, Pointer, Pointer, Int);

    // row-major source, rows, columns, tile-layout destination, 16-byte vectors of the destination.
    private static readonly KernelSignature PackTilesKernel = new(["pack_mma_tiles"], Pointer, Int, Int, Pointer, Long);
    // table (tile layout), token ids, output, rows, width: as embed_*.
    private static readonly KernelSignature EmbedTilesKernel = new(KernelSignature.Names("embed_mma_tiles", TensorCoreTypes),
        Pointer, Pointer, Pointer, Int, Int);

    public static IReadOnlyList<KernelSignature> Signatures => [MatMulKernel, MatMulSiluKernel, PackTilesKernel, EmbedTilesKernel];

    private readonly KernelQueue _queue;
    private readonly int _threads, _features, _featuresOneRow, _mmaThreads, _mmaChunk, _mmaWideTiles;
    // F16/BF16 weights on the tensor-core kernels (all row counts) rather than the CUDA-core ones.
    private readonly bool _tensorCores;
    // Resident blocks per multiprocessor at most, for batches and for one row.
    private readonly int _blocksPerSm, _blocksPerSmOneRow;
    private readonly ConcurrentDictionary<CudaFunction, int> _residentBlocks = new();

    /// <summary>KANGAROO_MATMUL_TENSOR_CORES: 1 = the tensor-core kernels for F16/BF16 weights, 0 or unset = the CUDA-core ones.</summary>
    public static bool TensorCoresFromEnvironment() => Environment.GetEnvironmentVariable("KANGAROO_MATMUL_TENSOR_CORES") switch
    {
        null or "" or "0" => false,
        "1" => true,
        string other => throw new ArgumentException(
            $"KANGAROO_MATMUL_TENSOR_CORES is '{other}': expected 1 (tensor-core kernels for F16/BF16 weights) or 0 (CUDA-core kernels, the default)"),
    };

    public MatMulLauncher(KernelQueue queue, KernelDefines defines, bool tensorCores)
    {
        _queue = queue;
        _threads = defines[Threads];
        _features = defines[Features];
        _featuresOneRow = defines[FeaturesOneRow];
        _mmaThreads = defines[MmaWarps] * 32;
        _mmaChunk = defines[MmaVectors] * 32;
        _mmaWideTiles = defines[MmaWideTiles];
        _tensorCores = tensorCores;
        // KANGAROO_MATMUL_BLOCKS_PER_SM tunes the grid without a rebuild. Measured best on an H100 (bench/RESULTS.md):
        // 2-row tiles at up to 16 blocks for decode, 4-row at 8 for batches.
        bool blocksSet = int.TryParse(Environment.GetEnvironmentVariable("KANGAROO_MATMUL_BLOCKS_PER_SM"), out int perSm) && perSm > 0;
        _blocksPerSm = blocksSet ? perSm : 8;
        _blocksPerSmOneRow = blocksSet ? perSm : 16;
    }

    /// <summary>
    /// Whether a weight of this type and row count is packed into the tile layout at load: F16/BF16 matrices, where the
    /// backend uses the tensor-core kernels. A tiled weight always takes them, so the choice is the weight's, made once.
    /// </summary>
    public bool TakesTiles(DType dtype, int rows) => _tensorCores && (dtype is DType.F16 or DType.BF16) && rows > 1;

    /// <summary>
    /// A new buffer with the row-major 16-bit matrix <paramref name="rowMajor"/> in the tile layout (matmul.cu), which
    /// pads it to whole m-tiles and K chunks. Waits for the repack, so the caller may free the source at once.
    /// </summary>
    public DeviceBuffer PackIntoTiles(DeviceBuffer rowMajor, int rows, int columns, string name)
    {
        long vectors = (long)Tiles(rows, MmaTileRows) * Tiles(columns, _mmaChunk) * MmaTileRows * _mmaChunk / 8;
        var packed = _queue.Allocate(vectors * 16, $"weight {name} (tile layout)");
        try
        {
            var args = new LaunchArguments(PackTilesKernel);
            args.Pointer(rowMajor); args.Int(rows); args.Int(columns); args.Pointer(packed); args.Long(vectors);
            lock (_queue.Gate)
            {
                _queue.Launch(_queue.Kernels["pack_mma_tiles"], (uint)((vectors + LayoutThreads - 1) / LayoutThreads), LayoutThreads, args);
                _queue.Stream.Synchronize();
            }
            return packed;
        }
        catch
        {
            packed.Dispose();
            throw;
        }
    }

    /// <summary>Embed for a table in the tile layout (a tied LM head's matrix).</summary>
    public void EmbedFromTiles(CudaWeight table, CudaIndices tokens, CudaActivations output, int rows)
    {
        CheckEmbed(table, tokens.Host, output.Length, rows);
        if (rows == 0) return;
        var args = new LaunchArguments(EmbedTilesKernel);
        args.Pointer(table.Memory); args.Pointer(tokens.Memory); args.Pointer(output.Memory); args.Int(rows); args.Int(table.Columns);
        long elements = (long)rows * table.Columns;
        _queue.Launch(_queue.Kernels.ForType("embed_mma_tiles", table.DType), (uint)((elements + LayoutThreads - 1) / LayoutThreads), LayoutThreads, args);
    }

    public void MatMul(CudaActivations x, CudaWeight w, CudaActivations y, int rows)
    {
        CheckMatMul(x, w, y, rows);
        if (rows == 0) return;
        LaunchMatMul(x, rows, w.Columns, w.DType, w.Tiled, (w, y), default, default);
    }

    public void MatMulShared(CudaActivations x, int rows, CudaWeight w0, CudaActivations y0, CudaWeight w1, CudaActivations y1,
        CudaWeight? third, CudaActivations? thirdOutput)
    {
        CheckMatMul(x, w0, y0, rows, "firstOutput");
        CheckMatMul(x, w1, y1, rows, "secondOutput");
        (CudaWeight, CudaActivations) target2 = default;
        if (third is not null)
        {
            var (w2, y2) = (third, thirdOutput!);
            CheckMatMul(x, w2, y2, rows, "thirdOutput");
            target2 = (w2, y2);
        }
        if (w1.Columns != w0.Columns || (target2.Item1 is { } w2c && w2c.Columns != w0.Columns))
            throw new ArgumentException("weights that share an input must have the same number of columns", "second");
        if (rows == 0) return;
        // One launch needs one weight type and layout; mixed ones (never seen in a checkpoint, but legal) take one launch each.
        bool Differs(CudaWeight w) => w.DType != w0.DType || w.Tiled != w0.Tiled;
        if (Differs(w1) || (target2.Item1 is { } w2t && Differs(w2t)))
        {
            LaunchMatMul(x, rows, w0.Columns, w0.DType, w0.Tiled, (w0, y0), default, default);
            LaunchMatMul(x, rows, w1.Columns, w1.DType, w1.Tiled, (w1, y1), default, default);
            if (target2.Item1 is { } w2d) LaunchMatMul(x, rows, w2d.Columns, w2d.DType, w2d.Tiled, target2, default, default);
            return;
        }
        LaunchMatMul(x, rows, w0.Columns, w0.DType, w0.Tiled, (w0, y0), (w1, y1), target2);
    }

    public void MatMulSiluMul(CudaActivations x, CudaWeight g, CudaWeight u, CudaActivations y, int rows)
    {
        CheckMatMul(x, g, y, rows);
        if (u.Rows != g.Rows || u.Columns != g.Columns || u.DType != g.DType)
            throw new ArgumentException($"up ({u.Rows}×{u.Columns} {u.DType}) must have the shape and type of gate ({g.Rows}×{g.Columns} {g.DType})", "up");
        if (rows == 0) return;
        var args = new LaunchArguments(MatMulSiluKernel);
        args.Pointer(x.Memory); args.Int(rows); args.Int(g.Columns); args.Pointer(g.Memory); args.Pointer(u.Memory); args.Pointer(y.Memory); args.Int(g.Rows);
        // Same type and shape, so the same layout (TakesTiles decides by those alone).
        if (g.Tiled)
        {
            // A task is a group of m-tiles of gate rows and the same up rows over one row group (matmul.cu).
            var (suffix, groupRows) = MmaVariant(rows);
            var mma = _queue.Kernels.ForType("matmul_silu", g.DType, suffix);
            int tasks = Tiles(Tiles(g.Rows, MmaTileRows), Math.Max(1, MmaTilesPerTask(rows) / 2)) * Tiles(rows, groupRows);
            _queue.Launch(mma, EvenGrid(mma, tasks, _mmaThreads), (uint)_mmaThreads, args);
            return;
        }
        // A tile holds FEATURES / 2 gate rows and the same up rows (matmul.cu).
        int half = (rows == 1 ? _featuresOneRow : _features) / 2;
        var kernel = _queue.Kernels.ForType("matmul_silu", g.DType, rows == 1 ? "_r1" : "");
        _queue.Launch(kernel, Grid(kernel, (g.Rows + half - 1) / half, _threads), (uint)_threads, args);
    }

    // Up to three weights sharing x, one output each; absent targets are default. matmul.cu: a block tile is FEATURES
    // weight rows of one matrix (an m-tile for tiled weights, which take the tensor-core kernels); blocks grid-stride
    // over the tiles of all three.
    private void LaunchMatMul(CudaActivations x, int rows, int columns, DType dtype, bool tensorCore,
        (CudaWeight W, CudaActivations Y) first, (CudaWeight? W, CudaActivations? Y) second, (CudaWeight? W, CudaActivations? Y) third)
    {
        var args = new LaunchArguments(MatMulKernel);
        args.Pointer(x.Memory); args.Int(rows); args.Int(columns);
        int features = tensorCore ? MmaTileRows * MmaTilesPerTask(rows) : rows == 1 ? _featuresOneRow : _features;
        int tiles = AddTarget(ref args, first.W, first.Y, features) + AddTarget(ref args, second.W, second.Y, features) +
                    AddTarget(ref args, third.W, third.Y, features);
        if (tensorCore)
        {
            // A task is a group of m-tiles of one matrix over one row group (matmul.cu).
            var (suffix, groupRows) = MmaVariant(rows);
            var mma = _queue.Kernels.ForType("matmul", dtype, suffix);
            _queue.Launch(mma, EvenGrid(mma, tiles * Tiles(rows, groupRows), _mmaThreads), (uint)_mmaThreads, args);
            return;
        }
        // One row (a decode step) takes the variant without accumulators for absent rows: same operations, more blocks resident.
        var kernel = _queue.Kernels.ForType("matmul", dtype, rows == 1 ? "_r1" : "");
        _queue.Launch(kernel, Grid(kernel, tiles, _threads), (uint)_threads, args);
    }

    private static int Tiles(int count, int tile) => (count + tile - 1) / tile;

    // m-tiles per task of a tensor-core launch over `rows` input rows: MMA_WIDE_TILES for the widest variant, else one.
    private int MmaTilesPerTask(int rows) => rows > MmaVariants[^2].Rows ? _mmaWideTiles : 1;

    // The fewest n-tiles that hold every row in one pass; beyond the widest variant, passes of its width.
    private static (string Suffix, int GroupRows) MmaVariant(int rows)
    {
        foreach (var (suffix, most) in MmaVariants)
            if (rows <= most) return (suffix, most);
        return MmaVariants[^1];
    }

    private static int AddTarget(ref LaunchArguments args, CudaWeight? w, CudaActivations? y, int features)
    {
        if (w is null)
        {
            args.NullPointer(); args.NullPointer(); args.Int(0);
            return 0;
        }
        args.Pointer(w.Memory); args.Pointer(y!.Memory); args.Int(w.Rows);
        return (w.Rows + features - 1) / features;
    }

    // As few blocks as take the same number of rounds of tasks as a full grid: every block then has the same count of
    // tasks to within one, rather than a few blocks each left with a lone extra round after the rest are done.
    private uint EvenGrid(CudaFunction kernel, int tasks, int threads)
    {
        int rounds = Tiles(tasks, Resident(kernel, threads));
        return (uint)Tiles(tasks, rounds);
    }

    // Blocks grid-stride over the tiles, so the grid is what fits on the GPU at once (never a second, partial wave).
    private uint Grid(CudaFunction kernel, int tiles, int threads) => (uint)Math.Min(tiles, Resident(kernel, threads));

    // The kernel's own occupancy over the GPU, capped by the blocks-per-multiprocessor setting; computed once per kernel,
    // so later launches read it without a lock or an allocation.
    private int Resident(CudaFunction kernel, int threads) => _residentBlocks.GetOrAdd(kernel, static (k, state) =>
    {
        var (self, threads) = state;
        int cap = k.Name.EndsWith("_r1", StringComparison.Ordinal) ? self._blocksPerSmOneRow : self._blocksPerSm;
        return self._queue.Device.MultiprocessorCount * Math.Clamp(k.MaxActiveBlocksPerMultiprocessor(threads), 1, cap);
    }, (this, threads));
}
