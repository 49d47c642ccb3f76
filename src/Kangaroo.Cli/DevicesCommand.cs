using Kangaroo.Backends;

namespace Kangaroo.Cli;

/// <summary><c>kangaroo devices</c>: every backend and device, available or not, and why.</summary>
internal static class DevicesCommand
{
    private const string Help = """
        Usage: kangaroo devices

        Lists every backend and device with available / not available and the reason, in the order --backend auto tries them.
        """;

    public static int Run(string[] args, TextWriter stdout)
    {
        var a = new Arguments(args, [], ["help", "verbose"]);
        if (a.Flag("help"))
        {
            stdout.WriteLine(Help);
            return Cli.Success;
        }
        if (a.Positionals.Count > 0) throw new UsageException($"unexpected argument '{a.Positionals[0]}'");
        foreach (var c in BackendSelector.Survey())
            stdout.WriteLine($"{c.Backend,-6} {(c.IsAvailable ? "available    " : "not available"),-13} {c.Device}{(c.Reason is null ? "" : $": {c.Reason}")}");
        return Cli.Success;
    }
}
