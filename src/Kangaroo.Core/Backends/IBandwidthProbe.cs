namespace Kangaroo.Backends;

/// <summary>A device's measured memory bandwidth: the ceilings a benchmark holds its kernels against.</summary>
/// <param name="CopyGigabytesPerSecond">A large device-to-device copy: bytes read plus bytes written, per second.</param>
/// <param name="ReadGigabytesPerSecond">A large buffer summed: bytes read per second (what a decode step's weight streaming can reach).</param>
/// <param name="Bytes">Size of the buffer each probe moved.</param>
public sealed record BandwidthFigures(double CopyGigabytesPerSecond, double ReadGigabytesPerSecond, long Bytes);

/// <summary>A backend that can measure its device's memory bandwidth with its own copy and a read-only kernel.</summary>
public interface IBandwidthProbe
{
    /// <summary>Median of several timed copies and reads of a buffer of about <paramref name="bytes"/> bytes.</summary>
    BandwidthFigures MeasureBandwidth(long bytes = 1L << 30);
}
