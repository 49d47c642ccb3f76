using System.Globalization;
using Kangaroo.LoadBench;

// A bounded load client for `kangaroo serve` (closed loop: each of C clients sends its next request when the last ended).
//
//   kangaroo serve --kangaroo --port 8080 &
//   dotnet bench/Kangaroo.LoadBench/bin/Release/net10.0/kangaroo-loadbench.dll --url http://127.0.0.1:8080/ \
//       --concurrency 1,8,32 --modes vanilla,kangaroo --max-tokens 64 --json load.json --markdown load.md
try
{
    var options = LoadOptions.Parse(args);
    if (options is null)
    {
        Console.WriteLine(LoadOptions.Help);
        return 0;
    }
    var results = await LoadBenchmark.RunAsync(options, Console.Error);
    string table = LoadReport.Markdown(results, options);
    Console.WriteLine(table);
    if (options.MarkdownPath is { } markdown) File.WriteAllText(markdown, table + "\n");
    if (options.JsonPath is { } json) File.WriteAllText(json, LoadReport.Json(results, options));
    return results.Any(r => r.Errors > 0) ? 1 : 0;
}
catch (LoadUsageException e)
{
    Console.Error.WriteLine($"kangaroo-loadbench: {e.Message}");
    return 2;
}
catch (HttpRequestException e)
{
    Console.Error.WriteLine($"kangaroo-loadbench: error: {e.Message}");
    return 2;
}

namespace Kangaroo.LoadBench
{
    public sealed class LoadUsageException(string message) : Exception(message);

    internal static class Parse
    {
        public static int Int(string option, string value) =>
            int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0 ? n
                : throw new LoadUsageException($"{option} must be a positive integer, got '{value}'");
    }
}
