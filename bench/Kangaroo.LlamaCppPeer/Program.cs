using System.Diagnostics;
using System.Globalization;
using Kangaroo;
using Kangaroo.Backends.Cpu;
using Kangaroo.Diagnostics;
using Kangaroo.Generation;
using Kangaroo.Gguf;
using LLama;
using LLama.Common;
using LLama.Native;

// Usage: kangaroo-llamacpp-peer MODEL_DIR [--prompts FILE] [--prompt-count N] [--max-tokens N] [--threads N] [--gguf PATH]
// Exit codes: 0 done (texts identical or not: the report says), 2 bad input.
var inv = CultureInfo.InvariantCulture;
try
{
    if (args.Length == 0 || args[0] is "--help" or "-h")
    {
        Console.WriteLine("kangaroo-llamacpp-peer MODEL_DIR [--prompts FILE] [--prompt-count N] [--max-tokens N] [--threads N] [--gguf PATH]");
        return args.Length == 0 ? 2 : 0;
    }
    string model = args[0];
    string? Option(string name) { int i = Array.IndexOf(args, "--" + name); return i > 0 && i + 1 < args.Length ? args[i + 1] : null; }
    int IntOption(string name, int fallback) => Option(name) is { } v
        ? int.TryParse(v, NumberStyles.None, inv, out int n) && n > 0 ? n : throw new KangarooException($"--{name} takes a whole number ≥ 1, got '{v}'")
        : fallback;
    int maxTokens = IntOption("max-tokens", 128), threads = IntOption("threads", Environment.ProcessorCount);
    IReadOnlyList<string> prompts = Option("prompts") is { } file ? EndToEndBenchmark.ReadPrompts(file, IntOption("prompt-count", 8)) : ["def add(a, b):"];

    string gguf = Option("gguf") ?? Path.Combine(Path.GetTempPath(), $"kangaroo-peer-{Guid.NewGuid():N}.gguf");
    var export = Stopwatch.StartNew();
    LlamaGgufExporter.Export(model, gguf);
    Console.WriteLine(string.Create(inv, $"exported {gguf} ({new FileInfo(gguf).Length / 1e6:F1} MB) in {export.Elapsed.TotalSeconds:F1} s"));

    NativeLibraryConfig.All.WithLogCallback((level, message) => { if (level >= LLamaLogLevel.Error) Console.Error.Write(message); });
    var parameters = new ModelParams(gguf) { ContextSize = 4096, Threads = threads, BatchThreads = threads, GpuLayerCount = 0 };
    // llama.cpp first, with our engine not yet loaded, so that neither's threads compete with the other's.
    var peer = new List<(string Text, int Tokens, double Seconds)>();
    using (var peerWeights = LLamaWeights.LoadFromFile(parameters))
    {
        Generate(peerWeights, parameters, prompts[0], 16);   // untimed warm-up
        foreach (string prompt in prompts) peer.Add(Generate(peerWeights, parameters, prompt, maxTokens));
    }
    if (Option("gguf") is null) File.Delete(gguf);

    using var backend = new CpuBackend(threads);
    using var ours = LanguageModel.Load(model, new ModelLoadOptions { Backend = backend });
    ours.Generate(prompts[0], new GenerationOptions { MaxNewTokens = 16 });   // untimed warm-up (JIT)
    double oursTokens = 0, oursSeconds = 0;
    int identical = 0;
    for (int p = 0; p < prompts.Count; p++)
    {
        var mine = ours.Generate(prompts[p], new GenerationOptions { MaxNewTokens = maxTokens });
        oursTokens += Math.Max(0, mine.Timings.DecodedTokens - 1);
        oursSeconds += mine.Timings.Decode.TotalSeconds;
        if (peer[p].Text == mine.Text) identical++;
        else Console.WriteLine($"prompt {p}: texts differ\n  ours:      {Escape(mine.Text)}\n  llama.cpp: {Escape(peer[p].Text)}");
    }
    double oursRate = oursTokens / oursSeconds, peerRate = peer.Sum(r => Math.Max(0, r.Tokens - 1)) / peer.Sum(r => r.Seconds);
    Console.WriteLine(string.Create(inv, $"{prompts.Count} prompts × ≤ {maxTokens} new tokens, greedy, {threads} threads"));
    Console.WriteLine(string.Create(inv, $"  ours (CPU backend): {oursRate,8:F1} tok/s decode"));
    Console.WriteLine(string.Create(inv, $"  llama.cpp:          {peerRate,8:F1} tok/s decode (LLamaSharp 0.30's native llama.cpp, same weights as GGUF)"));
    Console.WriteLine(string.Create(inv, $"  ours ÷ llama.cpp:   {oursRate / peerRate,8:F2}"));
    Console.WriteLine(string.Create(inv, $"  texts identical:    {identical} of {prompts.Count}"));
    return 0;

    static string Escape(string text) => text.Replace("\n", "\\n", StringComparison.Ordinal);

    // Greedy through llama.cpp's own decode, one token per call, argmax over its logits: the text, the tokens generated
    // and the seconds after the first (which comes from the prompt's logits, as in our engine's decode timing).
    static (string Text, int Tokens, double Seconds) Generate(LLamaWeights weights, ModelParams parameters, string prompt, int maxTokens)
    {
        using var context = weights.CreateContext(parameters);
        var promptTokens = context.Tokenize(prompt, true, false);
        var batch = new LLamaBatch();
        for (int i = 0; i < promptTokens.Length; i++) batch.Add(promptTokens[i], i, LLamaSeqId.Zero, i == promptTokens.Length - 1);
        if (context.Decode(batch) != DecodeResult.Ok) throw new KangarooException($"llama.cpp could not decode a prompt of {promptTokens.Length} tokens");
        var decoder = new StreamingTokenDecoder(context);
        var eos = weights.Vocab.EOS;
        int position = promptTokens.Length, tokens = 0;
        Stopwatch? clock = null;
        while (true)
        {
            var logits = context.NativeHandle.GetLogitsIth(batch.TokenCount - 1);
            int best = 0;
            for (int v = 1; v < logits.Length; v++) if (logits[v] > logits[best]) best = v;
            var token = (LLamaToken)best;
            if (tokens++ == 0) clock = Stopwatch.StartNew();
            if (token == eos) break;
            decoder.Add(token);
            if (tokens == maxTokens) break;
            batch.Clear();
            batch.Add(token, position++, LLamaSeqId.Zero, true);
            if (context.Decode(batch) != DecodeResult.Ok) throw new KangarooException($"llama.cpp could not decode at position {position - 1}");
        }
        return (decoder.Read(), tokens, clock!.Elapsed.TotalSeconds);
    }
}
catch (KangarooException e)
{
    Console.Error.WriteLine($"kangaroo-llamacpp-peer: {e.Message}");
    return 2;
}
