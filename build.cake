// Build script: `dotnet tool restore && dotnet cake` restores, builds and runs every test.
// Targets: Clean, Build, CheckKernels, Test (default), Publish (the kangaroo CLI into artifacts/kangaroo), Pack (the NuGet
// packages into artifacts/packages; --package-version=X overrides the version in src/Directory.Build.props).
var target = Argument("target", "Test");
var configuration = Argument("configuration", "Release");
var packageVersion = Argument<string>("package-version", null);
var solution = "./Kangaroo.Native.sln";

// The version given on the command line reaches the assemblies as well as the packages, so they agree.
DotNetMSBuildSettings VersionSettings()
{
    var settings = new DotNetMSBuildSettings();
    if (!string.IsNullOrEmpty(packageVersion)) settings.WithProperty("Version", packageVersion);
    return settings;
}

Task("Clean").Does(() =>
{
    CleanDirectories("./src/**/bin/" + configuration);
    CleanDirectories("./tests/**/bin/" + configuration);
    CleanDirectory("./artifacts");
});

Task("Build").Does(() =>
{
    DotNetBuild(solution, new DotNetBuildSettings { Configuration = configuration, MSBuildSettings = VersionSettings() });
});

// Every CUDA kernel compiled to PTX by clang (kernels/check.sh): a broken kernel fails here, on machines without a GPU.
// Returns null when every kernel compiles, else why the check failed: check.sh exits with 3 when no clang is installed
// (nothing was checked), with another non-zero status when a kernel does not compile.
string KernelCheckFailure()
{
    var exitCode = StartProcess("bash", new ProcessSettings { Arguments = "kernels/check.sh" });
    return exitCode switch
    {
        0 => null,
        3 => "clang is not installed: kernels/check.sh compiles the CUDA kernels to PTX with clang-19, clang-14 or clang "
             + "(Debian/Ubuntu: apt-get install clang-14; .ci/run installs it)",
        _ => $"a CUDA kernel does not compile (kernels/check.sh exit code {exitCode}: the FAILED lines above name it)",
    };
}

Task("CheckKernels").Does(() =>
{
    var failure = KernelCheckFailure();
    if (failure != null) throw new Exception("kernels/check.sh: " + failure);
});

// Runs the test executable (xunit.v3 on Microsoft Testing Platform) and ends with the plain summary line
// `Tests: N passed, N failed, N skipped` that CI reads. GPU tests report skipped on machines without a GPU.
// The kernel check and the microbenchmarks' smoke run count as one test each, so a failing one is named and still
// leaves the summary line.
Task("Test").IsDependentOn("Build").Does(() =>
{
    var kernelFailure = KernelCheckFailure();
    var exitCode = StartProcess("dotnet", new ProcessSettings
    {
        Arguments = $"test --project tests/Kangaroo.Tests/Kangaroo.Tests.csproj -c {configuration} --no-build",
        RedirectStandardOutput = true,
    }, out var output);
    int total = 0, failed = 0, passed = 0, skipped = 0;
    foreach (var line in output)
    {
        Information(line);
        var t = line.Trim();
        if (t.StartsWith("total:")) total = int.Parse(t.Substring(6).Trim());
        else if (t.StartsWith("failed:")) failed = int.Parse(t.Substring(7).Trim());
        else if (t.StartsWith("succeeded:")) passed = int.Parse(t.Substring(10).Trim());
        else if (t.StartsWith("skipped:")) skipped = int.Parse(t.Substring(8).Trim());
    }
    // The microbenchmarks' smoke run (every op once per available backend) counts as one more test.
    var smoke = StartProcess("dotnet", new ProcessSettings
    {
        Arguments = $"bench/Kangaroo.Bench/bin/{configuration}/net10.0/Kangaroo.Bench.dll --smoke",
        RedirectStandardOutput = true,
    }, out var smokeOutput);
    foreach (var line in smokeOutput) Information(line);
    var named = new List<string>();
    var testsRun = total;   // 0: the test executable reported nothing
    total += 2;
    if (smoke == 0) passed++; else { failed++; named.Add("the microbenchmarks' smoke run (Kangaroo.Bench --smoke) failed"); }
    if (kernelFailure == null) passed++; else { failed++; named.Add("kernels/check.sh: " + kernelFailure); }
    foreach (var failure in named) Error("failed: " + failure);
    // Plain text (no console colouring) so CI can read the line as it is.
    Console.WriteLine($"Tests: {passed} passed, {failed} failed, {skipped} skipped");
    if (exitCode != 0 || failed > 0 || testsRun == 0)
        throw new Exception($"tests failed (exit code {exitCode}, {failed} failed, {total} run)"
                            + string.Concat(named.Select(f => "; " + f)));
});

Task("Publish").Does(() =>
{
    DotNetPublish("./src/Kangaroo.Cli/Kangaroo.Cli.csproj", new DotNetPublishSettings
    {
        Configuration = configuration,
        OutputDirectory = "./artifacts/kangaroo",
    });
});

// Every packable project (all of src/ but Kangaroo.Tools: the libraries, the server and the kangaroo tool) with its
// symbol package, from the binaries Build made. The tool package is whatever its publish folder holds, so that folder
// starts empty: files of an earlier publish cannot slip in.
Task("Pack").IsDependentOn("Build").Does(() =>
{
    CleanDirectory("./artifacts/packages");
    CleanDirectory("./artifacts/pack-publish");
    var msbuild = VersionSettings().WithProperty("PublishDir", MakeAbsolute(Directory("./artifacts/pack-publish")).FullPath + "/");
    DotNetPack(solution, new DotNetPackSettings
    {
        Configuration = configuration,
        NoBuild = true,
        OutputDirectory = "./artifacts/packages",
        MSBuildSettings = msbuild,
    });
    foreach (var package in GetFiles("./artifacts/packages/*.nupkg")) Information(package.GetFilename().ToString());
});

RunTarget(target);
