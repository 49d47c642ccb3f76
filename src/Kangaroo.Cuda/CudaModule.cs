using System.Text;
using Kangaroo.Cuda.Interop;

namespace Kangaroo.Cuda;

/// <summary>A loaded module (cubin, fatbin or PTX) and the kernels in it.</summary>
public sealed class CudaModule : IDisposable
{
    private CudaModule(CudaContext context, CudaHandle handle)
    {
        Context = context;
        Handle = handle;
    }

    /// <summary>
    /// Loads a module image: a cubin or fatbin (ELF; the driver reads its size from the header) or PTX text (which
    /// the driver JIT-compiles and needs NUL-terminated: a terminator is appended if missing).
    /// </summary>
    public static unsafe CudaModule Load(CudaContext context, ReadOnlySpan<byte> image)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (image.IsEmpty)
            throw new ArgumentException("module image is empty", nameof(image));
        context.EnsureCurrent();

        // ELF (cubin) starts 7F 'E' 'L' 'F'; a fatbin starts with its magic 0xBA55ED50 (little-endian).
        bool binary = image.StartsWith((ReadOnlySpan<byte>)[0x7F, (byte)'E', (byte)'L', (byte)'F'])
                      || image.StartsWith((ReadOnlySpan<byte>)[0x50, 0xED, 0x55, 0xBA]);
        if (!binary && image[^1] != 0)
        {
            var terminated = new byte[image.Length + 1];
            image.CopyTo(terminated);
            image = terminated;
        }

        nint module;
        int result;
        fixed (byte* pointer = image)
            result = Driver.cuModuleLoadData(&module, pointer);
        if (result != CudaErrors.Success)
        {
            string? hint = result == CudaErrors.NoBinaryForGpu
                ? $"the image was not built for this GPU (sm_{context.Device.ComputeCapability.Major}{context.Device.ComputeCapability.Minor})"
                : null;
            throw new CudaException($"cuModuleLoadData({image.Length}-byte {(binary ? "binary" : "PTX")} image)", result, hint);
        }
        return new CudaModule(context, CudaHandle.ForObject(CudaHandleKind.Module, module, context.Handle));
    }

    public CudaContext Context { get; }

    internal CudaHandle Handle { get; }

    /// <summary>Looks a kernel up by its (extern "C" or mangled) name.</summary>
    public unsafe CudaFunction GetFunction(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Handle.ThrowIfClosed(this);
        Context.EnsureCurrent();
        var utf8 = new byte[Encoding.UTF8.GetByteCount(name) + 1]; // cold path: once per kernel at load time
        Encoding.UTF8.GetBytes(name, utf8);
        nint function;
        int result;
        fixed (byte* pointer = utf8)
            result = Driver.cuModuleGetFunction(&function, Handle.Value, pointer);
        if (result != CudaErrors.Success)
            throw new CudaException($"cuModuleGetFunction(\"{name}\")", result, "is the kernel declared extern \"C\" __global__?");
        return new CudaFunction(this, function, name);
    }

    public void Dispose() => Handle.Dispose();
}
