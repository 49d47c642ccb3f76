using Kangaroo.Weights;

using static Kangaroo.Backends.BackendArguments;
using static Kangaroo.Backends.Cuda.Launchers.KernelParameter;

namespace Kangaroo.Backends.Cuda.Launchers;

/// <summary>norm.cu: RmsNorm and AddRmsNorm, one block per row.</summary>
internal sealed class NormLauncher(KernelQueue queue, KernelDefines defines)
{
    /// <summary>Threads per block (one block per row): many threads keep the two passes over a 4096-wide row short.</summary>
    public static readonly KernelDefine Threads = new("NORM_THREADS", 1024);

    public static IReadOnlyList<KernelDefine> Defines => [Threads];

    private static readonly DType[] WeightTypes = [DType.F32, DType.F16, DType.BF16];
    private static readonly KernelSignature RmsNormKernel = new(KernelSignature.Names("rmsnorm", WeightTypes),
        Pointer, Pointer, Float, Pointer, Int);
    private static readonly KernelSignature AddRmsNormKernel = new(KernelSignature.Names("add_rmsnorm", WeightTypes),
        Pointer, Pointer, Pointer, Float, Pointer, Int);

    public static IReadOnlyList<KernelSignature> Signatures => [RmsNormKernel, AddRmsNormKernel];

    private readonly uint _threads = (uint)defines[Threads];

    public void RmsNorm(CudaActivations x, CudaWeight w, float eps, CudaActivations y, int rows, int width)
    {
        CheckNorm(rows, width, x.Length, y.Length, w);
        if (rows == 0) return;
        var args = new LaunchArguments(RmsNormKernel);
        args.Pointer(x.Memory); args.Pointer(w.Memory); args.Float(eps); args.Pointer(y.Memory); args.Int(width);
        queue.Launch(queue.Kernels.ForType("rmsnorm", w.DType), (uint)rows, _threads, args);
    }

    public void AddRmsNorm(CudaActivations r, CudaActivations d, CudaWeight w, float eps, CudaActivations y, int rows, int width)
    {
        CheckNorm(rows, width, r.Length, y.Length, w);
        CheckExtent(d.Length, rows, width, "delta");
        if (rows == 0) return;
        var args = new LaunchArguments(AddRmsNormKernel);
        args.Pointer(r.Memory); args.Pointer(d.Memory); args.Pointer(w.Memory); args.Float(eps); args.Pointer(y.Memory); args.Int(width);
        queue.Launch(queue.Kernels.ForType("add_rmsnorm", w.DType), (uint)rows, _threads, args);
    }

    private static void CheckNorm(int rows, int width, long inputLength, long outputLength, CudaWeight weight)
    {
        CudaArguments.CheckRows(rows, int.MaxValue, nameof(rows));
        if ((long)weight.Rows * weight.Columns != width) throw new ArgumentException($"norm weight has {weight.Rows * weight.Columns} values, width is {width}");
        CheckExtent(inputLength, rows, width, "input");
        CheckExtent(outputLength, rows, width, "output");
    }
}
