using Kangaroo.Backends;
using Xunit;

namespace Kangaroo.Tests.CommandLine;

public class CliDevicesTests
{
    [Fact]
    public void DevicesListsEveryBackendWithItsAvailability()
    {
        var output = new StringWriter();
        int exit = Kangaroo.Cli.Cli.Run(["devices"], output, new StringWriter(), new StringReader(""));
        Assert.Equal(0, exit);
        string text = output.ToString();
        Assert.Contains("cuda", text);
        Assert.Matches("cpu +available", text);
        // Without a driver the CUDA line says why.
        if (!Kangaroo.Backends.Cuda.CudaBackend.IsAvailable(out string? reason)) Assert.Contains(reason!, text);
    }

    [Fact]
    public void AutoFallsBackToTheCpuWithAReasonWhenCudaIsAbsent()
    {
        if (Kangaroo.Backends.Cuda.CudaBackend.IsAvailable(out _)) Assert.Skip("CUDA is available here: auto picks it");
        var choice = BackendSelector.Create("auto");
        using var backend = choice.Backend;
        Assert.Equal("cpu", backend.Name);
        Assert.Contains(choice.FallbackReasons, r => r.StartsWith("cuda: ", StringComparison.Ordinal));
    }

    [Fact]
    public void AnUnavailableExplicitBackendIsAClearError()
    {
        if (Kangaroo.Backends.Cuda.CudaBackend.IsAvailable(out _)) Assert.Skip("CUDA is available here");
        var e = Assert.Throws<KangarooException>(() => BackendSelector.Create("cuda"));
        Assert.Contains("the CUDA backend is not available", e.Message);
    }
}
