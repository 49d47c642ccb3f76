namespace Kangaroo.Backends;

/// <summary>
/// A backend that can time its own queued work on the device (GPU events), so a benchmark measures kernel time rather
/// than launch and synchronization overhead. Backends without it are timed by the wall clock after a
/// <see cref="IComputeBackend.Synchronize"/>.
/// </summary>
public interface IDeviceTimer
{
    /// <summary>Runs <paramref name="work"/> (which queues operations) and returns the device time it took, in microseconds.</summary>
    double TimeOnDevice(Action work);
}
