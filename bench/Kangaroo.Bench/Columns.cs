using System.Collections.Concurrent;
using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Kangaroo.Backends;

namespace Kangaroo.Bench;

/// <summary>
/// What the benchmark methods record besides BenchmarkDotNet's wall clock: device time per call (GPU events) and the bytes
/// each op must move. The benchmarks run in-process, so the columns read the same statics.
/// </summary>
public static class DeviceTimings
{
    private static readonly ConcurrentDictionary<CaseKey, ConcurrentBag<double>> Times = new();
    private static readonly ConcurrentDictionary<CaseKey, long> Bytes = new();

    public static void Add(CaseKey key, double microseconds) => Times.GetOrAdd(key, _ => []).Add(microseconds);

    public static void SetBytes(CaseKey key, long bytes) => Bytes[key] = bytes;

    public static double? MedianMicroseconds(CaseKey key)
    {
        if (!Times.TryGetValue(key, out var bag) || bag.IsEmpty) return null;
        var sorted = bag.ToArray();
        Array.Sort(sorted);
        return sorted[sorted.Length / 2];
    }

    public static long? BytesOf(CaseKey key) => Bytes.TryGetValue(key, out long b) ? b : null;

    public static CaseKey KeyOf(BenchmarkCase c) => new(
        c.Descriptor.WorkloadMethod.Name,
        (string)c.Parameters["Backend"],
        (string)c.Parameters["Shape"],
        (int)c.Parameters["Rows"]);
}

/// <summary>
/// Each backend's memory ceilings, measured once at setup by the backend's own probe (<see cref="IBandwidthProbe"/>, 256 MiB
/// buffers): a device-to-device copy (bytes read + written) and a read-only sum (bytes read: what streaming weights can
/// reach, the reference the matmul targets are held against). Backends without a probe (ILGPU) show '-'.
/// </summary>
public static class Ceilings
{
    private static readonly ConcurrentDictionary<string, BandwidthFigures> Figures = new();

    public static void Measure(string name, IComputeBackend backend)
    {
        if (backend is IBandwidthProbe probe && !Figures.ContainsKey(name))
            Figures[name] = probe.MeasureBandwidth(256L << 20);
    }

    public static double? Of(string name) => Figures.TryGetValue(name, out var f) ? f.CopyGigabytesPerSecond : null;

    public static double? ReadOf(string name) => Figures.TryGetValue(name, out var f) ? f.ReadGigabytesPerSecond : null;
}

/// <summary>The extra columns: device µs, MB moved, GB/s (device time where there is one) and that as a share of the copy ceiling.</summary>
public sealed class DeviceColumn(string name, string legend, Func<Summary, BenchmarkCase, string> value) : IColumn
{
    public static readonly IColumn[] All =
    [
        new DeviceColumn("Device µs", "Median device time of one call (CUDA events); '-' where the backend has no device timer",
            (_, c) => DeviceTimings.MedianMicroseconds(DeviceTimings.KeyOf(c)) is double us ? us.ToString("F2", CultureInfo.InvariantCulture) : "-"),
        new DeviceColumn("MB moved", "Bytes the op must move at least (weights or KV cache read, activations in and out)",
            (_, c) => DeviceTimings.BytesOf(DeviceTimings.KeyOf(c)) is long b ? (b / 1e6).ToString("F2", CultureInfo.InvariantCulture) : "-"),
        new DeviceColumn("GB/s", "MB moved over device time, or over the mean wall time where there is no device timer",
            (s, c) => Rate(s, c) is double gb ? gb.ToString("F1", CultureInfo.InvariantCulture) : "-"),
        new DeviceColumn("% of copy", "GB/s as a share of the backend's measured device-to-device copy bandwidth (read + write)",
            (s, c) => Rate(s, c) is double gb && Ceilings.Of((string)c.Parameters["Backend"]) is double ceiling
                ? (100 * gb / ceiling).ToString("F0", CultureInfo.InvariantCulture) + "%" : "-"),
        new DeviceColumn("% of read", "GB/s as a share of the backend's measured read bandwidth (a large buffer summed)",
            (s, c) => Rate(s, c) is double gb && Ceilings.ReadOf((string)c.Parameters["Backend"]) is double ceiling
                ? (100 * gb / ceiling).ToString("F0", CultureInfo.InvariantCulture) + "%" : "-"),
    ];

    private static double? Rate(Summary summary, BenchmarkCase c)
    {
        var key = DeviceTimings.KeyOf(c);
        if (DeviceTimings.BytesOf(key) is not long bytes) return null;
        double? microseconds = DeviceTimings.MedianMicroseconds(key) ?? summary[c]?.ResultStatistics?.Mean / 1e3;
        return microseconds is > 0 ? bytes / (microseconds.Value * 1e3) : null;
    }

    public string Id => nameof(DeviceColumn) + "." + ColumnName;
    public string ColumnName => name;
    public string Legend => legend;
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => value(summary, benchmarkCase);
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => value(summary, benchmarkCase);
}
