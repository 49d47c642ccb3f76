namespace Kangaroo.Backends;

/// <summary>
/// A backend that counts the kernels it issues: launched directly, or recorded into replayable work (counted once, when
/// recorded). Launch counts per step say how much of a latency-bound step is launch overhead.
/// </summary>
public interface IKernelLaunchCounter
{
    /// <summary>Kernels issued since the backend was created.</summary>
    long KernelLaunches { get; }
}
