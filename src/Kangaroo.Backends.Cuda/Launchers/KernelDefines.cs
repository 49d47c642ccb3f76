using System.Globalization;

namespace Kangaroo.Backends.Cuda.Launchers;

/// <summary>
/// The preprocessor definitions every kernel file is compiled with: each launcher's <see cref="KernelDefine"/>s, with the
/// values of <c>KANGAROO_KERNEL_DEFINES</c> (tuning runs, e.g. <c>"FEATURES=2 K_UNROLL=2"</c>) in place of the launchers'
/// own. An override changes the value for the kernel and its launcher alike, so the two cannot disagree; names no launcher
/// owns (the kernels' own tuning knobs) go to the compiler as given.
/// </summary>
internal sealed class KernelDefines
{
    public const string Variable = "KANGAROO_KERNEL_DEFINES";

    private readonly Dictionary<string, int> _values = new(StringComparer.Ordinal);

    /// <param name="overrides">Space-separated <c>NAME=VALUE</c> or <c>NAME</c> entries; null or empty for none.</param>
    public KernelDefines(string? overrides)
    {
        foreach (var define in All) _values[define.Name] = define.Value;
        var passedOn = new List<string>();
        foreach (string entry in (overrides ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int equals = entry.IndexOf('=', StringComparison.Ordinal);
            string name = equals < 0 ? entry : entry[..equals];
            if (!_values.TryGetValue(name, out int fallback))
            {
                passedOn.Add(entry);
                continue;
            }
            if (equals < 0 || !int.TryParse(entry.AsSpan(equals + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value))
                throw new KangarooException($"{Variable}: \"{entry}\" needs a whole number after the '=' ({name}={fallback} unless overridden)");
            _values[name] = value;
        }
        Options = [.. All.Select(d => string.Create(CultureInfo.InvariantCulture, $"{d.Name}={_values[d.Name]}")), .. passedOn];
    }

    /// <summary>Every launcher's definitions, in a fixed order (it is part of the compiled kernels' cache key).</summary>
    public static IReadOnlyList<KernelDefine> All { get; } =
        [.. MatMulLauncher.Defines, .. AttentionLauncher.Defines, .. NormLauncher.Defines, .. SelectionLauncher.Defines];

    /// <summary>The definitions for NVRTC, <c>NAME=VALUE</c> (or <c>NAME</c>) each, without the <c>-D</c>.</summary>
    public IReadOnlyList<string> Options { get; }

    /// <summary>The value <paramref name="define"/> has in this compilation.</summary>
    public int this[KernelDefine define] => _values[define.Name];

    public static KernelDefines FromEnvironment() => new(Environment.GetEnvironmentVariable(Variable));
}
