using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Kangaroo.Backends.Cpu;
using Kangaroo.Generation;
using Kangaroo.Tests.TinyModels;
using Xunit;
using static Kangaroo.Tests.CommandLine.CliRunner;

namespace Kangaroo.Tests.CommandLine;

/// <summary><c>kangaroo serve</c> as a user runs it: a process that prints its address, answers, and stops on SIGTERM.</summary>
public sealed class CliServeTests
{
    private CancellationToken Cancel => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ServeAnswersOverHttpAndStopsGracefullyOnSigterm()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) Assert.Skip("SIGTERM is a POSIX signal");
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { Path.Combine(AppContext.BaseDirectory, "kangaroo.dll"), "serve", "--port", "0", "--kangaroo", "--max-sequences", "2", "--backend", "cpu" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync(Cancel);
        try
        {
            string line = await process.StandardOutput.ReadLineAsync(Cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(60), Cancel) ?? "";
            Assert.StartsWith("listening on http://127.0.0.1:", line);
            using var http = new HttpClient { BaseAddress = new Uri(line["listening on ".Length..]) };
            using var response = await http.PostAsync("v1/completions", Serving.ServerClient.JsonContent(new { model = "demo", prompt = "def fibonacci(n):", max_tokens = 16 }), Cancel);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var body = JsonNode.Parse(await response.Content.ReadAsStringAsync(Cancel))!;
            using (var model = LanguageModel.Load(TestModels.DemoDirectory, new ModelLoadOptions { Backend = new CpuBackend() }))
                Assert.Equal(model.Generate("def fibonacci(n):", new GenerationOptions { MaxNewTokens = 16 }).Text, (string?)body["choices"]![0]!["text"]);
            Assert.NotNull(body["usage"]!["kangaroo"]);
        }
        finally
        {
            using var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            await kill.WaitForExitAsync(Cancel);
        }
        await process.WaitForExitAsync(Cancel).WaitAsync(TimeSpan.FromSeconds(60), Cancel);
        string log = await stderr;
        Assert.True(process.ExitCode == 0, log);
        Assert.Contains("model demo on cpu, 2 sequences", log);
        Assert.Contains("stopped after 1 requests", log);
    }

    [Fact]
    public void BadServeOptionsAreUsageErrors()
    {
        AssertBadInput(Run("serve", "--port", "70000"), "--port", "65535");
        AssertBadInput(Run("serve", "--host", "example.com"), "--host", "IP address");
        AssertBadInput(Run("serve", "--kangaroo-off-by-default"), "needs --kangaroo");
        AssertBadInput(Run("serve", "--threshold", "0.5"), "need --kangaroo");
        AssertBadInput(Run("serve", "now"), "no arguments");
        AssertBadInput(Run("serve", "--max-sequences", "0"), "max sequences");
        AssertBadInput(Run("serve", "--shutdown-timeout", "-1"), "--shutdown-timeout");
        AssertBadInput(Run("serve", "--model", "/nonexistent/model"), "/nonexistent/model", "not found");
    }

    [Fact]
    public void APortInUseIsAClearError()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;
        AssertBadInput(Run("serve", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--backend", "cpu"), "cannot listen on", $"127.0.0.1:{port}");
    }
}
