namespace Kangaroo.Backends.Cuda.Launchers;

/// <summary>
/// A constant that a launcher owns and its kernel file needs, passed to NVRTC as <c>-DNAME=VALUE</c>: the one place the
/// value is written. The kernels refuse to compile without it; kernels/check.sh reads the same declarations, so each is
/// declared on one line of a launcher as <c>public static readonly KernelDefine Field = new("NAME", 123);</c>.
/// </summary>
internal sealed record KernelDefine(string Name, int Value);
