using System.Globalization;

namespace Kangaroo.Cli;

/// <summary>A command-line mistake: printed with the command's usage hint, exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>
/// Minimal GNU-style option parsing: <c>--name value</c>, <c>--name=value</c>, flags, repeated options and positionals.
/// Small on purpose: every mistake becomes one clear <see cref="UsageException"/>.
/// </summary>
internal sealed class Arguments
{
    private readonly Dictionary<string, List<string>> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);
    private readonly HashSet<string> _consumed = new(StringComparer.Ordinal);

    public List<string> Positionals { get; } = [];

    /// <param name="valueOptions">Options that take a value (without the leading dashes).</param>
    /// <param name="flagOptions">Options that take none.</param>
    public Arguments(IEnumerable<string> args, IReadOnlyCollection<string> valueOptions, IReadOnlyCollection<string> flagOptions)
    {
        using var e = args.GetEnumerator();
        bool onlyPositionals = false;
        while (e.MoveNext())
        {
            string arg = e.Current;
            if (onlyPositionals || !arg.StartsWith("--", StringComparison.Ordinal) || arg == "--")
            {
                if (arg == "--" && !onlyPositionals) { onlyPositionals = true; continue; }
                if (!onlyPositionals && arg.StartsWith('-') && arg.Length > 1 && arg != "-")
                {
                    if (arg is "-h") { _flags.Add("help"); continue; }
                    throw new UsageException($"unknown option '{arg}'");
                }
                Positionals.Add(arg);
                continue;
            }
            string name = arg[2..];
            string? inline = null;
            int eq = name.IndexOf('=');
            if (eq >= 0) { inline = name[(eq + 1)..]; name = name[..eq]; }
            if (flagOptions.Contains(name))
            {
                if (inline is not null) throw new UsageException($"option '--{name}' takes no value");
                _flags.Add(name);
            }
            else if (valueOptions.Contains(name))
            {
                string value = inline ?? (e.MoveNext() ? e.Current : throw new UsageException($"option '--{name}' needs a value"));
                if (!_values.TryGetValue(name, out var list)) _values[name] = list = [];
                list.Add(value);
            }
            else
            {
                throw new UsageException($"unknown option '--{name}'");
            }
        }
    }

    public bool Flag(string name) => _flags.Contains(name);

    public string? String(string name) => _values.TryGetValue(name, out var list) ? list[^1] : null;

    public IReadOnlyList<string> All(string name) => _values.TryGetValue(name, out var list) ? list : [];

    public int? Int(string name)
    {
        string? text = String(name);
        if (text is null) return null;
        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value)
            ? value
            : throw new UsageException($"option '--{name}' expects an integer, got '{text}'");
    }

    public ulong? UInt64(string name)
    {
        string? text = String(name);
        if (text is null) return null;
        return ulong.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out ulong value)
            ? value
            : throw new UsageException($"option '--{name}' expects a non-negative integer, got '{text}'");
    }

    public float? Float(string name)
    {
        string? text = String(name);
        if (text is null) return null;
        return float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float value)
            ? value
            : throw new UsageException($"option '--{name}' expects a number, got '{text}'");
    }
}
