using ILGPU.Algorithms;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace Kangaroo.Backends.Ilgpu;

/// <summary>Which of ILGPU's accelerator families runs the kernels.</summary>
public enum IlgpuAcceleratorKind
{
    /// <summary>ILGPU's multi-threaded CPU simulator: runs anywhere, used by CI.</summary>
    Cpu,
    Cuda,
    OpenCL,
}

/// <summary>One accelerator ILGPU can see (or the reason a family has none usable).</summary>
/// <param name="Index">Device index within its family, to pass to <see cref="IlgpuBackend"/>; -1 when none was found.</param>
public sealed record IlgpuDeviceInfo(IlgpuAcceleratorKind Kind, int Index, string Name, bool Available, string? Reason)
{
    public override string ToString() => Available
        ? $"{Kind}[{Index}]: {Name}"
        : $"{Kind}: unavailable ({Reason})";
}

/// <summary>Enumerates ILGPU devices per family; a family that fails to load (no driver, no runtime) is reported, not thrown.</summary>
internal static class IlgpuDevices
{
    public static Context CreateContext(IlgpuAcceleratorKind kind) => Context.Create(builder =>
    {
        // The GPU back ends have no built-in exp/sin/cos/sqrt for float: ILGPU.Algorithms supplies them (the CPU
        // accelerator runs .NET's own).
        builder.EnableAlgorithms();
        switch (kind)
        {
            case IlgpuAcceleratorKind.Cpu:
                builder.CPU();
                break;
            case IlgpuAcceleratorKind.Cuda:
                builder.Cuda();
                break;
            case IlgpuAcceleratorKind.OpenCL:
                builder.OpenCL();
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown ILGPU accelerator kind");
        }
    });

    /// <summary>The devices of one family, in index order, as a context of that family numbers them.</summary>
    public static IReadOnlyList<Device> DevicesOf(Context context, IlgpuAcceleratorKind kind)
    {
        var devices = new List<Device>();
        switch (kind)
        {
            case IlgpuAcceleratorKind.Cpu:
                foreach (CPUDevice device in context.GetCPUDevices())
                    devices.Add(device);
                break;
            case IlgpuAcceleratorKind.Cuda:
                foreach (CudaDevice device in context.GetCudaDevices())
                    devices.Add(device);
                break;
            case IlgpuAcceleratorKind.OpenCL:
                foreach (CLDevice device in context.GetCLDevices())
                    devices.Add(device);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown ILGPU accelerator kind");
        }
        return devices;
    }

    public static IReadOnlyList<IlgpuDeviceInfo> Describe(IlgpuAcceleratorKind kind)
    {
        try
        {
            using Context context = CreateContext(kind);
            IReadOnlyList<Device> devices = DevicesOf(context, kind);
            if (devices.Count == 0)
                return [new IlgpuDeviceInfo(kind, -1, "(none)", false, $"ILGPU found no {kind} device (driver or runtime missing?)")];
            return devices.Select((device, index) => new IlgpuDeviceInfo(kind, index, DescribeDevice(device), true, null)).ToArray();
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            // Describe must never throw: a missing native library or driver is an answer, not an error.
            return [new IlgpuDeviceInfo(kind, -1, "(none)", false, $"{exception.GetType().Name}: {exception.Message}")];
        }
    }

    public static string DescribeDevice(Device device) => device.AcceleratorType == AcceleratorType.CPU
        ? $"{device.Name} ({Environment.ProcessorCount} host cores)"
        : $"{device.Name} ({device.MemorySize / (1024.0 * 1024 * 1024):F1} GiB)";
}
