namespace Kangaroo.Backends.Cuda.Launchers;

/// <summary>The kinds of parameter the kernels take, as cuLaunchKernel copies them (it cannot check them).</summary>
internal enum KernelParameter
{
    /// <summary>Any <c>T*</c>: a device address, 8 bytes.</summary>
    Pointer,

    /// <summary><c>int</c>, 4 bytes.</summary>
    Int,

    /// <summary><c>long long</c>, 8 bytes.</summary>
    Long,

    /// <summary><c>float</c>, 4 bytes.</summary>
    Float,
}
