using System.Runtime.CompilerServices;
using Kangaroo.Cuda.Interop;

namespace Kangaroo.Cuda;

/// <summary>A kernel in a <see cref="CudaModule"/>. Valid while the module is; launching allocates nothing.</summary>
public sealed class CudaFunction
{
    private readonly nint _function;

    internal CudaFunction(CudaModule module, nint function, string name)
    {
        Module = module;
        _function = function;
        Name = name;
    }

    public CudaModule Module { get; }

    public string Name { get; }

    /// <summary>Largest block this kernel can launch with (register use may make it less than the device's).</summary>
    public int MaxThreadsPerBlock => GetAttribute(Driver.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, "max threads per block");

    /// <summary>Registers per thread, as compiled.</summary>
    public int RegisterCount => GetAttribute(Driver.CU_FUNC_ATTRIBUTE_NUM_REGS, "registers");

    /// <summary>How many blocks of <paramref name="blockSize"/> threads fit on one multiprocessor at once (registers, shared memory).</summary>
    public unsafe int MaxActiveBlocksPerMultiprocessor(int blockSize, int dynamicSharedBytes = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        Prepare();
        int blocks;
        CudaErrors.Check(Driver.cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, _function, blockSize, (nuint)dynamicSharedBytes),
            $"cuOccupancyMaxActiveBlocksPerMultiprocessor({Name}, {blockSize} threads)");
        return blocks;
    }

    /// <summary>
    /// Allows launches with up to <paramref name="bytes"/> of dynamic shared memory. Needed above 48 KiB, up to
    /// <see cref="CudaDevice.MaxSharedMemoryPerBlockOptin"/> (less the kernel's static shared memory).
    /// </summary>
    public void SetMaxDynamicSharedMemory(int bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        Prepare();
        int result = Driver.cuFuncSetAttribute(_function, Driver.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
        if (result != CudaErrors.Success)
            throw new CudaException($"cuFuncSetAttribute({Name}, max dynamic shared memory = {bytes} bytes)", result,
                $"the device allows {Module.Context.Device.MaxSharedMemoryPerBlockOptin} bytes per block (opt-in)");
    }

    /// <summary>
    /// Queues the kernel on <paramref name="stream"/>. Each element of <paramref name="argumentPointers"/> is the
    /// address of one argument's value, in parameter order (e.g. <c>(nint)(&amp;n)</c> of a local); the values are
    /// copied before this returns. The driver cannot check count or types against the kernel: that is on the caller.
    /// </summary>
    public unsafe void Launch(CudaStream stream, Dim3 grid, Dim3 block, int sharedBytes, ReadOnlySpan<nint> argumentPointers)
    {
        ArgumentNullException.ThrowIfNull(stream);
        nint s = stream.Prepare();
        Prepare();
        int result;
        fixed (nint* arguments = argumentPointers)
        {
            result = Driver.cuLaunchKernel(_function, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z,
                (uint)sharedBytes, s, argumentPointers.IsEmpty ? null : (void**)arguments, null);
        }
        if (result != CudaErrors.Success)
            ThrowLaunchFailure(result, grid, block, sharedBytes);
    }

    /// <summary>Queues the kernel with arguments packed by <see cref="KernelArguments"/>.</summary>
    public void Launch(CudaStream stream, Dim3 grid, Dim3 block, int sharedBytes, in KernelArguments arguments)
    {
        Span<nint> pointers = stackalloc nint[KernelArguments.MaxArguments];
        arguments.WritePointers(pointers);
        Launch(stream, grid, block, sharedBytes, pointers[..arguments.Count]);
    }

    public override string ToString() => Name;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Prepare()
    {
        Module.Handle.ThrowIfClosed(Module);
        Module.Context.EnsureCurrent();
    }

    private unsafe int GetAttribute(int attribute, string what)
    {
        Prepare();
        int value;
        int result = Driver.cuFuncGetAttribute(&value, attribute, _function);
        if (result != CudaErrors.Success)
            CudaErrors.Throw(result, $"cuFuncGetAttribute({Name}, {what})");
        return value;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowLaunchFailure(int result, Dim3 grid, Dim3 block, int sharedBytes)
    {
        string? hint = null;
        if (result == 701) // CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES
            hint = $"the kernel uses {TryRegisterCount()} registers per thread; try a smaller block";
        else if (sharedBytes > 48 * 1024)
            hint = "launches above 48 KiB of dynamic shared memory need SetMaxDynamicSharedMemory first";
        throw new CudaException($"cuLaunchKernel({Name}, grid {grid}, block {block}, {sharedBytes} shared bytes)", result, hint);
    }

    private string TryRegisterCount()
    {
        try
        {
            return RegisterCount.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (CudaException)
        {
            return "an unknown number of";
        }
    }
}
