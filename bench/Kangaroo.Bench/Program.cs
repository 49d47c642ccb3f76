using System.Globalization;
using System.Reflection;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Exporters.Json;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Kangaroo.Bench;

// In-process (no project is generated and built per benchmark): runs where only the .NET runtime is installed, as on
// the GPU machine, and lets the columns read what the benchmark methods recorded.
//
//   dotnet run -c Release --project bench/Kangaroo.Bench -- --filter '*'                # every op, backend, shape, row count
//   dotnet run -c Release --project bench/Kangaroo.Bench -- --filter '*' --anyCategories ...  (any BenchmarkDotNet option)
//   dotnet run -c Release --project bench/Kangaroo.Bench -- --smoke                     # each op once per backend (CI)
if (args is ["--smoke"])
    return Smoke.Run(Console.Out);

var config = ManualConfig.CreateEmpty()
    .AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance)
        .WithWarmupCount(3).WithIterationCount(10).WithInvocationCount(4).WithUnrollFactor(1))
    .AddColumnProvider(DefaultColumnProviders.Instance)
    .AddColumn(DeviceColumn.All)
    .AddLogger(BenchmarkDotNet.Loggers.ConsoleLogger.Default)
    .AddExporter(MarkdownExporter.GitHub, JsonExporter.Full)
    .WithOptions(ConfigOptions.DisableOptimizationsValidator);
BenchmarkSwitcher.FromAssembly(typeof(OpBenchmarks).Assembly).Run(args, config);
return 0;

/// <summary>Every benchmark method once per available backend on the demo shape, 1 and 8 rows: proves they all run.</summary>
internal static class Smoke
{
    public static int Run(TextWriter output)
    {
        var methods = typeof(OpBenchmarks).GetMethods().Where(m => m.GetCustomAttribute<BenchmarkAttribute>() is not null).ToArray();
        foreach (string backend in OpBenchmarks.AvailableBackends())
            foreach (int rows in new[] { 1, 8 })
            {
                var bench = new OpBenchmarks { Backend = backend, Shape = "demo", Rows = rows };
                bench.Setup();
                try
                {
                    foreach (var method in methods)
                    {
                        method.Invoke(bench, null);
                        long? bytes = DeviceTimings.BytesOf(new CaseKey(method.Name, backend, "demo", rows));
                        if (bytes is not > 0) throw new InvalidOperationException($"{method.Name} recorded no bytes");
                        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ok  {backend,-6} rows {rows}  {method.Name,-18} {bytes / 1e6,8:F3} MB"));
                    }
                }
                finally
                {
                    bench.Cleanup();
                }
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    {backend} copy ceiling {Ceilings.Of(backend):F1} GB/s"));
            }
        output.WriteLine("Kangaroo.Bench smoke: every op ran on every available backend");
        return 0;
    }
}
