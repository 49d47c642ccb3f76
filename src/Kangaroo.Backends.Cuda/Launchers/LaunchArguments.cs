using Kangaroo.Cuda;

namespace Kangaroo.Backends.Cuda.Launchers;

/// <summary>
/// The arguments of one launch, packed (<see cref="KernelArguments"/>) in the order and of the kinds that
/// <see cref="KernelSignature"/> gives: a launcher that packs an argument of another kind, one too many or one too few,
/// or launches a kernel its signature does not cover, fails here rather than handing the driver bytes that a kernel
/// reads as something else.
/// </summary>
internal ref struct LaunchArguments(KernelSignature signature)
{
    private KernelArguments _packed;

    /// <summary>A device buffer for a <c>T*</c> parameter.</summary>
    public void Pointer(DeviceBuffer buffer)
    {
        Expect(KernelParameter.Pointer);
        _packed.Add(buffer);
    }

    /// <summary>A null <c>T*</c>: an optional input the kernel skips.</summary>
    public void NullPointer()
    {
        Expect(KernelParameter.Pointer);
        _packed.Add(0UL);
    }

    public void Int(int value)
    {
        Expect(KernelParameter.Int);
        _packed.Add(value);
    }

    public void Long(long value)
    {
        Expect(KernelParameter.Long);
        _packed.Add(value);
    }

    public void Float(float value)
    {
        Expect(KernelParameter.Float);
        _packed.Add(value);
    }

    /// <summary>Arguments packed so far.</summary>
    public readonly int Count => _packed.Count;

    /// <summary>Queues <paramref name="kernel"/> with these arguments, once they are complete and the signature covers it.</summary>
    public readonly void Launch(CudaFunction kernel, CudaStream stream, Dim3 grid, Dim3 block)
    {
        CheckComplete(kernel.Name);
        kernel.Launch(stream, grid, block, 0, in _packed);
    }

    /// <summary>Throws unless every parameter has its argument and <paramref name="kernel"/> is one the signature covers.</summary>
    public readonly void CheckComplete(string kernel)
    {
        if (!signature.Covers(kernel))
            throw new InvalidOperationException($"{kernel} is launched with the arguments of {signature}");
        if (_packed.Count != signature.Parameters.Length)
            throw new InvalidOperationException($"{kernel} takes {signature.Parameters.Length} arguments, {_packed.Count} were packed");
    }

    private readonly void Expect(KernelParameter kind)
    {
        int index = _packed.Count;
        if (index >= signature.Parameters.Length || signature.Parameters[index] != kind)
            ThrowMismatch(index, kind);
    }

    private readonly void ThrowMismatch(int index, KernelParameter kind) =>
        throw new InvalidOperationException(index >= signature.Parameters.Length
            ? $"{signature} takes {signature.Parameters.Length} arguments; a {kind} was packed after them"
            : $"{signature}: argument {index} is a {signature.Parameters[index]}, a {kind} was packed");
}
