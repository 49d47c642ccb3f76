using System.Text.Json.Nodes;
using Kangaroo.Backends.Cpu;
using Kangaroo.Tests.TinyModels;

namespace Kangaroo.Tests.Serving;

/// <summary>The demo model copied with a chat template (it has none of its own) and its adapter, for the serving tests.</summary>
public static class ServingModels
{
    /// <summary>A Vicuna-style template: the rendered conversation the library's greedy output is compared on.</summary>
    public const string Template =
        "{% for m in messages %}{{ m['role'] | upper }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}";

    public static string Render(params (string Role, string Content)[] messages) =>
        string.Concat(messages.Select(m => $"{m.Role.ToUpperInvariant()}: {m.Content}\n")) + "ASSISTANT:";

    /// <summary>Writes the templated copy into <paramref name="directory"/>.</summary>
    public static string WriteTemplatedDemo(TestDirectory directory)
    {
        string demo = TestModels.DemoDirectory;
        foreach (string file in Directory.EnumerateFiles(demo)) File.Copy(file, directory.Combine(Path.GetFileName(file)));
        string adapter = directory.CreateSubdirectory("kangaroo-adapter");
        foreach (string file in Directory.EnumerateFiles(Path.Combine(demo, "kangaroo-adapter"))) File.Copy(file, Path.Combine(adapter, Path.GetFileName(file)));
        string configPath = directory.Combine("tokenizer_config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config["chat_template"] = Template;
        File.WriteAllText(configPath, config.ToJsonString());
        return directory.Path;
    }

    public static LanguageModel Load(string directory, int? context = null) =>
        LanguageModel.Load(directory, new ModelLoadOptions { Backend = new CpuBackend(), ContextLength = context });
}
