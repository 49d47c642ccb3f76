using static Kangaroo.Backends.BackendArguments;
using static Kangaroo.Backends.Cuda.Launchers.KernelParameter;

namespace Kangaroo.Backends.Cuda.Launchers;

/// <summary>norm.cu: RmsNorm and AddRmsNorm, one block per row.</summary>
internal sealed class NormLauncher(KernelQueue queue, KernelDefines defines)
{
    /// <summary>Threads per block (one block per row): many threads keep the two passes over a 4096-wide row short.</summary>
    public static readonly KernelDefine Threads = new("NORM_THREADS", 1024);

    public static IReadOnlyList<KernelDefine> Defines => [Threads];

    private static readonly KernelSignature RmsNormKernel = new(KernelSignature.Names("rmsnorm", KernelSignature.WeightTypes),
        Pointer, Pointer, Float, Pointer, Int);
    private static readonly KernelSignature AddRmsNormKernel = new(KernelSignature.Names("add_rmsnorm", KernelSignature.WeightTypes),
        Pointer, Pointer, Pointer, Float, Pointer, Int);

    public static IReadOnlyList<KernelSignature> Signatures => [RmsNormKernel, AddRmsNormKernel];

    private readonly uint _threads = (uint)defines[Threads];

    public void RmsNorm(CudaActivations x, CudaWeight w, float eps, CudaActivations y, int rows, int width)
    {
        CheckRmsNorm(x.Length, w, y.Length, rows, width);
        if (rows == 0) return;
        var args = new LaunchArguments(RmsNormKernel);
        args.Pointer(x.Memory); args.Pointer(w.Memory); args.Float(eps); args.Pointer(y.Memory); args.Int(width);
        queue.Launch(queue.Kernels.ForType("rmsnorm", w.DType), (uint)rows, _threads, args);
    }

    public void AddRmsNorm(CudaActivations r, CudaActivations d, CudaWeight w, float eps, CudaActivations y, int rows, int width)
    {
        CheckAddRmsNorm(r.Length, d.Length, w, y.Length, rows, width);
        if (rows == 0) return;
        var args = new LaunchArguments(AddRmsNormKernel);
        args.Pointer(r.Memory); args.Pointer(d.Memory); args.Pointer(w.Memory); args.Float(eps); args.Pointer(y.Memory); args.Int(width);
        queue.Launch(queue.Kernels.ForType("add_rmsnorm", w.DType), (uint)rows, _threads, args);
    }
}
