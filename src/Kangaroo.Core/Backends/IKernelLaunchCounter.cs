namespace Kangaroo.Backends;

/// <summary>
/// A backend that counts the kernels it runs: launched directly, or replayed as part of recorded work (each replay counts
/// every kernel it holds; recording itself counts none). Launch counts per step say how much of a latency-bound step is
/// launch overhead.
/// </summary>
public interface IKernelLaunchCounter
{
    /// <summary>Kernels run since the backend was created.</summary>
    long KernelLaunches { get; }
}
