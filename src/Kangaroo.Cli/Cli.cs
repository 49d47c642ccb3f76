using System.Reflection;

namespace Kangaroo.Cli;

/// <summary>
/// The <c>kangaroo</c> command. Exit codes: 0 success, 2 bad input or usage (one clear message, no stack trace
/// unless --verbose), 1 an internal error, 130 interrupted.
/// </summary>
public static class Cli
{
    public const int Success = 0;
    public const int InternalError = 1;
    public const int BadInput = 2;

    private const string Usage = """
        kangaroo — Llama inference with Kangaroo self-speculative decoding

        Usage: kangaroo <command> [options]

        Commands:
          generate       Generate text from a prompt (argument or standard input)
          serve          Serve the model over HTTP with OpenAI's API (continuous batching, streaming)
          inspect        Show a model's configuration, parameters, dtypes and memory
          random-model   Write a model directory with random weights (benchmark and test shapes)
          bench          Time decode, verification and draft steps of a model on a backend
          devices        List the backends and devices, available or not and why

        Run 'kangaroo <command> --help' for a command's options.
        Options: --help, --version
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, TextReader stdin)
    {
        bool verbose = args.Contains("--verbose");
        try
        {
            if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
            {
                // Asked-for help goes to stdout; usage printed because no command was given is an error: stderr.
                (args.Length == 0 ? stderr : stdout).WriteLine(Usage);
                return args.Length == 0 ? BadInput : Success;
            }
            if (args[0] == "--version")
            {
                stdout.WriteLine(typeof(Cli).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown");
                return Success;
            }
            string[] rest = args[1..];
            return args[0] switch
            {
                "generate" => GenerateCommand.Run(rest, stdout, stderr, stdin),
                "serve" => ServeCommand.Run(rest, stdout, stderr),
                "inspect" => InspectCommand.Run(rest, stdout, stderr),
                "random-model" => RandomModelCommand.Run(rest, stdout, stderr),
                "bench" => BenchCommand.Run(rest, stdout, stderr),
                "devices" => DevicesCommand.Run(rest, stdout),
                _ => throw new UsageException($"unknown command '{args[0]}' (commands: generate, serve, inspect, random-model, bench, devices)"),
            };
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"kangaroo: {e.Message}");
            stderr.WriteLine("Run 'kangaroo --help' or 'kangaroo <command> --help' for usage.");
            return BadInput;
        }
        catch (KangarooException e)
        {
            stderr.WriteLine($"kangaroo: error: {e.Message}");
            if (verbose) stderr.WriteLine(e);
            return BadInput;
        }
        catch (OutOfMemoryException e)
        {
            stderr.WriteLine("kangaroo: error: out of memory while loading the model or allocating its caches (a smaller --context needs less)");
            if (verbose) stderr.WriteLine(e);
            return InternalError;
        }
        catch (Exception e)
        {
            stderr.WriteLine($"kangaroo: internal error: {e.GetType().Name}: {e.Message}");
            stderr.WriteLine(verbose ? e.ToString() : "(run with --verbose for details)");
            return InternalError;
        }
    }

    /// <summary>
    /// The model directory: --model, else the demo model installed next to the program (models/demo beside the
    /// executable, not the working directory).
    /// </summary>
    internal static string ResolveModelDirectory(string? option)
    {
        if (option is not null)
        {
            if (File.Exists(option))
                throw new ModelFormatException(option, "is a file; --model expects the model directory (the folder holding config.json)");
            if (!Directory.Exists(option)) throw new ModelFormatException(option, "model directory not found");
            return option;
        }
        string demo = Path.Combine(AppContext.BaseDirectory, "models", "demo");
        if (Directory.Exists(demo)) return demo;
        throw new KangarooException($"no --model given and no demo model installed at {demo}");
    }
}
