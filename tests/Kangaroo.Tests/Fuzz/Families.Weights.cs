using System.Text;
using System.Text.Json.Nodes;

namespace Kangaroo.Tests.Fuzz;

/// <summary>Safetensors files to mutate: a base and a file in it.</summary>
internal static class WeightTargets
{
    public const string Model = "model.safetensors";
    public const string Adapter = "kangaroo-adapter/model.safetensors";
    public const string PyTorchAdapter = "kangaroo-adapter/pytorch_model.bin";
    public const string Shard1 = "model-00001-of-00002.safetensors";
    public const string Shard2 = "model-00002-of-00002.safetensors";

    public static (FuzzBase Base, string File) Safetensors(CaseBuilder b)
    {
        double r = b.G.Double();
        if (r < 0.55) return (b.Bases.Single, Model);
        if (r < 0.70) return (b.Bases.Sharded, b.G.Chance(0.5) ? Shard1 : Shard2);
        if (r < 0.90) return (b.Bases.Single, Adapter);
        return (b.Bases.Demo, Model);
    }

    public static (FuzzBase Base, string File) Any(CaseBuilder b)
    {
        double r = b.G.Double();
        if (r < 0.30) return (b.Bases.Single, Model);
        if (r < 0.45) return (b.Bases.Sharded, b.G.Chance(0.5) ? Shard1 : Shard2);
        if (r < 0.65) return (b.Bases.Single, Adapter);
        if (r < 0.92) return (b.Bases.PyTorch, PyTorchAdapter);
        return (b.Bases.Demo, Model);
    }
}

/// <summary>The safetensors header: the 8-byte length prefix and the JSON (dtype, shape, data_offsets, __metadata__).</summary>
internal sealed class SafeTensorsHeaderFamily : Family
{
    public override string Name => "safetensors-header";
    public override int Weight => 220;

    private static Action<CaseBuilder> On(string baseName, string file, string op, string? arg = null, string? tensor = null) =>
        b => Apply(b.On(b.Bases.Get(baseName)), file, op, arg, tensor);

    private static Action<CaseBuilder> M(string op, string? arg = null, string? tensor = null) => On("single", WeightTargets.Model, op, arg, tensor);

    public static readonly string[] Ops =
    [
        "prefix", "pad-spaces", "leading-space", "nul-pad", "bom", "root", "invalid-utf8", "truncate-json", "trailing-garbage", "comment",
        "trailing-comma", "dtype", "dtype", "shape", "shape", "shape", "offsets", "offsets", "offsets", "remove-entry", "remove-tensor",
        "duplicate-key", "extra-tensor", "extra-empty", "rename", "escaped-name", "unknown-key", "metadata", "metadata", "reorder", "pretty",
    ];

    public override IReadOnlyList<Action<CaseBuilder>> Systematic { get; } =
    [
        M("prefix", "+1"), M("prefix", "-1"), M("prefix", "0"), M("prefix", "1"), M("prefix", "2^63"), M("prefix", "2^64-1"),
        M("prefix", "filelen"), M("prefix", "max+1"), M("prefix", "7-byte-file"),
        M("pad-spaces", "8"), M("pad-spaces", "3"), M("leading-space"), M("nul-pad"), M("bom"),
        M("root", "[]"), M("root", "\"x\""), M("root", "5"), M("root", "null"), M("root", "{}"),
        M("invalid-utf8"), M("truncate-json"), M("trailing-garbage"), M("comment"), M("trailing-comma"),
        M("dtype", "\"F64\""), M("dtype", "\"I8\""), M("dtype", "\"I32\""), M("dtype", "\"U8\""), M("dtype", "\"BOOL\""), M("dtype", "\"F8_E4M3\""),
        M("dtype", "\"f32\""), M("dtype", "\"\""), M("dtype", "32"), M("dtype", "null"), M("dtype", "[\"F32\"]"), M("dtype", "\"F16\""),
        On("demo", WeightTargets.Model, "dtype", "\"BF16\""), On("demo", WeightTargets.Model, "dtype", "\"F32\""),
        M("shape", "scalar"), M("shape", "append-1"), M("shape", "transpose", "model.embed_tokens.weight"), M("shape", "negative"), M("shape", "float"),
        M("shape", "string"), M("shape", "2^31"), M("shape", "2^63"), M("shape", "zero"), M("shape", "null"), M("shape", "nested"),
        M("shape", "overflow"), M("shape", "flatten", "model.embed_tokens.weight"), M("shape", "1e400"),
        M("offsets", "swap"), M("offsets", "end+1"), M("offsets", "begin+1"), M("offsets", "zero"), M("offsets", "three"), M("offsets", "one"),
        M("offsets", "negative"), M("offsets", "float"), M("offsets", "string"), M("offsets", "2^64"), M("offsets", "null"), M("offsets", "overlap"),
        M("offsets", "shift"),
        M("remove-entry"), M("remove-tensor", null, "model.norm.weight"), M("duplicate-key"),
        M("extra-tensor", "model.layers.0.mlp.extra.weight"), M("extra-tensor", "model.layers.4.input_layernorm.weight"), M("extra-tensor", "lm_head.bias"),
        M("extra-empty"), M("rename", "model.norm.weights", "model.norm.weight"), M("rename", "", "model.norm.weight"), M("escaped-name"),
        M("unknown-key"), M("metadata", "5"), M("metadata", "\"x\""), M("metadata", "[]"), M("metadata", "null"), M("metadata", "{\"format\": 5}"),
        M("metadata", "remove"), M("metadata", "extra"), M("metadata", "huge"), M("metadata", "twice"), M("metadata", "deep"),
        M("reorder"), M("pretty"),
        On("single", WeightTargets.Adapter, "extra-tensor", "layers.0.mlp.gate_proj.weight"),
        On("single", WeightTargets.Adapter, "rename", "layers.0.self_attn.q_proj.weights", "layers.0.self_attn.q_proj.weight"),
        On("single", WeightTargets.Adapter, "dtype", "\"I32\""),
        On("single", WeightTargets.Adapter, "prefix", "+1"),
        On("sharded", WeightTargets.Shard1, "remove-tensor"),
        On("sharded", WeightTargets.Shard2, "extra-tensor", "model.layers.9.self_attn.q_proj.weight"),
        On("sharded", WeightTargets.Shard2, "prefix", "0"),
        On("demo", WeightTargets.Model, "truncate-json"),
    ];

    public override void Random(CaseBuilder b)
    {
        var (fb, file) = WeightTargets.Safetensors(b);
        b.On(fb);
        Apply(b, file, b.G.Pick(Ops), null, null);
    }

    public static void Apply(CaseBuilder b, string file, string op, string? arg, string? tensor)
    {
        var g = b.G;
        byte[] original = b.Current(file);
        var parts = StParts.Parse(original);
        var jt = JsonText.Parse(parts.HeaderText);
        var obj = jt.Object!;
        var names = obj.Select(p => p.Key).Where(k => k != "__metadata__").ToList();
        tensor ??= g.Pick(names);
        var entry = obj[tensor] as JsonObject;
        string where = $"{file}";
        ulong n = parts.Declared;
        string HeaderJson() => jt.Serialize(indented: false);

        switch (op)
        {
            case "prefix":
            {
                arg ??= g.Pick(new[] { "+1", "-1", "0", "1", "2^63", "2^64-1", "filelen", "max+1", "random" });
                if (arg == "7-byte-file")
                {
                    b.Write(file, original[..7]);
                    b.Refuse($"{where}: only 7 bytes (less than the length prefix)", "no complete length prefix");
                    return;
                }
                ulong declared = arg switch
                {
                    "+1" => n + 1, "-1" => n - 1, "0" => 0, "1" => 1, "2^63" => 1UL << 63, "2^64-1" => ulong.MaxValue,
                    "filelen" => (ulong)original.Length, "max+1" => 100_000_001, _ => (ulong)g.Long(0, long.MaxValue),
                };
                b.Write(file, StParts.Compose(declared, parts.Header, parts.Data));
                b.Refuse($"{where}: header length prefix {declared} instead of {n} ({arg})", "corrupt length prefix");
                return;
            }
            case "pad-spaces":
            {
                int k = int.Parse(arg ?? g.Pick(new[] { "1", "7", "8", "100" }), System.Globalization.CultureInfo.InvariantCulture);
                byte[] header = [.. parts.Header, .. Enumerable.Repeat((byte)' ', k)];
                b.Write(file, parts.WithHeader(header));
                b.Benign($"{where}: header padded with {k} more spaces (length prefix adjusted, as the format allows)");
                return;
            }
            case "leading-space":
                b.Write(file, parts.WithHeader([(byte)' ', (byte)'\n', .. parts.Header]));
                b.Step($"{where}: whitespace before the header's opening brace");
                return;
            case "nul-pad":
                b.Write(file, parts.WithHeader([.. parts.Header, 0, 0, 0]));
                b.Step($"{where}: header padded with NUL bytes");
                return;
            case "bom":
                b.Write(file, parts.WithHeader([0xEF, 0xBB, 0xBF, .. parts.Header]));
                b.Step($"{where}: UTF-8 byte order mark at the start of the header");
                return;
            case "root":
                arg ??= g.Pick(new[] { "[]", "\"x\"", "5", "null", "{}" });
                b.Write(file, parts.WithHeader(arg));
                b.Refuse($"{where}: header is {arg}", "no tensors");
                return;
            case "invalid-utf8":
            {
                byte[] header = (byte[])parts.Header.Clone();
                int at = parts.HeaderText.IndexOf(tensor, StringComparison.Ordinal) + 2;
                header[at] = 0xFF;
                b.Write(file, parts.WithHeader(header));
                b.Refuse($"{where}: byte 0xFF inside the name of \"{tensor}\" (invalid UTF-8)", "invalid UTF-8 header");
                return;
            }
            case "truncate-json":
            {
                string h = parts.HeaderText.TrimEnd();
                int cut = g.Int(1, Math.Min(h.Length, 200));
                b.Write(file, parts.WithHeader(h[..^cut]));
                b.Refuse($"{where}: header JSON cut {cut} chars short (length prefix matches the cut header)", "truncated header");
                return;
            }
            case "trailing-garbage":
                b.Write(file, parts.WithHeader(parts.HeaderText.TrimEnd() + "x"));
                b.Refuse($"{where}: 'x' after the header object", "garbage after the header");
                return;
            case "comment":
                b.Write(file, parts.WithHeader(parts.HeaderText.Insert(1, "/* comment */")));
                b.Step($"{where}: a /* comment */ in the header");
                return;
            case "trailing-comma":
            {
                string h = parts.HeaderText.TrimEnd();
                b.Write(file, parts.WithHeader(h[..^1] + ",}"));
                b.Step($"{where}: trailing comma in the header object");
                return;
            }
            case "dtype":
            {
                string current = entry!["dtype"]!.GetValue<string>();
                arg ??= g.Pick(new[] { "\"F64\"", "\"I8\"", "\"I32\"", "\"U8\"", "\"BOOL\"", "\"F8_E4M3\"", "\"f32\"", "\"\"", "32", "null", "[\"F32\"]", "\"BF16\"", "\"F16\"", "\"F32\"" });
                if (arg == JsonText.Literal(current)) arg = current == "F32" ? "\"F64\"" : "\"F32\"";
                jt.SetRaw(entry, "dtype", arg);
                b.Write(file, parts.WithHeader(HeaderJson()));
                string d = $"{where}: tensor \"{tensor}\" dtype {current} → {arg}";
                bool sameSizeFloat = current is "F16" or "BF16" && arg is "\"F16\"" or "\"BF16\"";
                if (sameSizeFloat) b.Step(d + " (same size: values reinterpreted)");
                else b.Refuse(d, "dtype does not match the data");
                b.Field("dtype");
                return;
            }
            case "shape":
            {
                var shape = entry!["shape"]!.AsArray().Select(x => x!.GetValue<long>()).ToList();
                arg ??= g.Pick(new[] { "scalar", "append-1", "transpose", "negative", "float", "string", "2^31", "2^63", "zero", "null", "nested", "overflow", "flatten", "1e400", "drop-dim" });
                if (arg == "transpose" && (shape.Count < 2 || shape[0] == shape[1])) arg = "append-1";
                if (arg is "flatten" or "drop-dim" && shape.Count < 2) arg = "append-1";
                string raw = arg switch
                {
                    "scalar" => "[]",
                    "append-1" => $"[{string.Join(", ", shape)}, 1]",
                    "transpose" => $"[{string.Join(", ", Enumerable.Reverse(shape))}]",
                    "negative" => $"[{-shape[0]}{string.Concat(shape.Skip(1).Select(s => $", {s}"))}]",
                    "float" => $"[{shape[0]}.0{string.Concat(shape.Skip(1).Select(s => $", {s}"))}]",
                    "string" => $"[\"{shape[0]}\"{string.Concat(shape.Skip(1).Select(s => $", {s}"))}]",
                    "2^31" => $"[2147483648{string.Concat(shape.Skip(1).Select(s => $", {s}"))}]",
                    "2^63" => "[9223372036854775807, 2]",
                    "zero" => $"[0{string.Concat(shape.Skip(1).Select(s => $", {s}"))}]",
                    "null" => "null",
                    "nested" => $"[[{shape[0]}]{string.Concat(shape.Skip(1).Select(s => $", {s}"))}]",
                    "overflow" => "[2147483647, 2147483647, 2147483647, 4]",
                    "flatten" => $"[{shape.Aggregate(1L, (a, x) => a * x)}]",
                    "1e400" => "[1e400]",
                    _ => $"[{shape[0]}]",
                };
                jt.SetRaw(entry, "shape", raw);
                b.Write(file, parts.WithHeader(HeaderJson()));
                b.Refuse($"{where}: tensor \"{tensor}\" shape [{string.Join(", ", shape)}] → {raw} ({arg})", "shape does not match the data or the config");
                b.Field("shape");
                return;
            }
            case "offsets":
            {
                var off = entry!["data_offsets"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
                arg ??= g.Pick(new[] { "swap", "end+1", "begin+1", "zero", "three", "one", "negative", "float", "string", "2^64", "null", "overlap", "shift" });
                long prevEnd = obj.Where(p => p.Key != "__metadata__" && p.Value is JsonObject)
                    .Select(p => p.Value!["data_offsets"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray())
                    .Where(o => o[1] <= off[0]).Select(o => o[0]).DefaultIfEmpty(0).Max();
                string raw = arg switch
                {
                    "swap" => $"[{off[1]}, {off[0]}]",
                    "end+1" => $"[{off[0]}, {off[1] + 1}]",
                    "begin+1" => $"[{off[0] + 1}, {off[1]}]",
                    "zero" => "[0, 0]",
                    "three" => $"[{off[0]}, {off[1]}, {off[1]}]",
                    "one" => $"[{off[0]}]",
                    "negative" => $"[-1, {off[1]}]",
                    "float" => $"[{off[0]}.5, {off[1]}]",
                    "string" => $"[\"{off[0]}\", {off[1]}]",
                    "2^64" => $"[{off[0]}, 18446744073709551616]",
                    "null" => "null",
                    "overlap" => $"[{prevEnd}, {prevEnd + (off[1] - off[0])}]",
                    _ => $"[{off[0] + 4}, {off[1] + 4}]",
                };
                if (arg == "overlap" && off[0] == 0) raw = $"[{off[0] + 4}, {off[1] + 4}]";
                jt.SetRaw(entry, "data_offsets", raw);
                b.Write(file, parts.WithHeader(HeaderJson()));
                b.Refuse($"{where}: tensor \"{tensor}\" data_offsets [{off[0]}, {off[1]}] → {raw} ({arg})", "offsets do not cover the data exactly");
                b.Field("data_offsets");
                return;
            }
            case "remove-entry":
                obj.Remove(tensor);
                b.Write(file, parts.WithHeader(HeaderJson()));
                b.Refuse($"{where}: header entry \"{tensor}\" removed (its bytes stay)", "a tensor is missing and its bytes are unindexed");
                return;
            case "remove-tensor":
            {
                var (tensors, metadata) = SafeTensorsBytes.Read(original);
                b.Write(file, SafeTensorsBytes.Pack(tensors.Where(t => t.Name != tensor), metadata));
                b.Refuse($"{where}: tensor \"{tensor}\" removed (header and data)", "a needed tensor is missing");
                return;
            }
            case "duplicate-key":
            {
                string h = parts.HeaderText;
                string entryText = $"\"{tensor}\":" + entry!.ToJsonString();
                b.Write(file, parts.WithHeader("{" + entryText + "," + h.TrimStart()[1..]));
                b.Step($"{where}: header entry \"{tensor}\" written twice");
                return;
            }
            case "extra-tensor" or "extra-empty":
            {
                var (tensors, metadata) = SafeTensorsBytes.Read(original);
                string name = op == "extra-empty" ? "model.extra.empty" : arg ?? g.Pick(new[] { "model.layers.0.mlp.extra.weight", "lm_head.bias", "unused.weight", "model.layers.0.self_attn.q_proj.bias" });
                int[] shape = op == "extra-empty" ? [0] : [b.Base.Config.HiddenSize];
                byte[] data = op == "extra-empty" ? [] : SafeTensorsBytes.Encode("F32", Enumerable.Range(0, shape[0]).Select(i => i * 0.01f).ToArray());
                tensors.Insert(g.Int(tensors.Count + 1), new StTensor(name, "F32", shape, data));
                b.Write(file, SafeTensorsBytes.Pack(tensors, metadata));
                b.Refuse($"{where}: extra tensor \"{name}\" F32 [{string.Join(", ", shape)}] added", "an unused tensor in the checkpoint");
                b.Field(name);
                return;
            }
            case "rename":
            {
                var (tensors, metadata) = SafeTensorsBytes.Read(original);
                string newName = arg ?? tensor + "s";
                b.Write(file, SafeTensorsBytes.Pack(tensors.Select(t => t.Name == tensor ? t with { Name = newName } : t), metadata));
                b.Refuse($"{where}: tensor \"{tensor}\" renamed \"{newName}\"", "a needed tensor is missing (and an unknown one present)");
                b.Field(newName);
                return;
            }
            case "escaped-name":
            {
                string h = parts.HeaderText;
                string quoted = $"\"{tensor}\"";
                string escaped = "\"" + tensor.Replace(".", "\\u002e") + "\"";
                b.Write(file, parts.WithHeader(h.Replace(quoted, escaped)));
                b.Benign($"{where}: tensor name \"{tensor}\" written with \\u002e escapes (the same string)");
                return;
            }
            case "unknown-key":
                jt.SetRaw(entry!, "foo", "1");
                b.Write(file, parts.WithHeader(HeaderJson()));
                b.Step($"{where}: tensor \"{tensor}\" entry has an unknown key \"foo\"");
                return;
            case "metadata":
            {
                arg ??= g.Pick(new[] { "5", "\"x\"", "[]", "null", "{\"format\": 5}", "{\"format\": null}", "{\"a\": {\"b\": 1}}", "remove", "extra", "huge", "twice", "deep" });
                switch (arg)
                {
                    case "remove":
                        obj.Remove("__metadata__");
                        b.Write(file, parts.WithHeader(HeaderJson()));
                        b.Benign($"{where}: __metadata__ removed");
                        return;
                    case "extra":
                        jt.SetRaw(obj, "__metadata__", "{\"format\": \"pt\", \"source\": \"fuzz\", \"empty\": \"\"}");
                        b.Write(file, parts.WithHeader(HeaderJson()));
                        b.Benign($"{where}: __metadata__ with extra string entries");
                        return;
                    case "huge":
                        jt.SetRaw(obj, "__metadata__", $"{{\"format\": \"pt\", \"note\": \"{new string('n', 1 << 20)}\"}}");
                        b.Write(file, parts.WithHeader(HeaderJson()));
                        b.Benign($"{where}: __metadata__ with a 1 MiB string");
                        return;
                    case "twice":
                        b.Write(file, parts.WithHeader("{\"__metadata__\": {\"format\": \"pt\"}, " + parts.HeaderText.TrimStart()[1..]));
                        b.Step($"{where}: __metadata__ appears twice");
                        return;
                    case "deep":
                        jt.SetRaw(obj, "__metadata__", "{\"x\": " + new string('[', 5000) + new string(']', 5000) + "}");
                        b.Write(file, parts.WithHeader(HeaderJson()));
                        b.Step($"{where}: __metadata__ value nested 5000 arrays deep");
                        return;
                    default:
                        jt.SetRaw(obj, "__metadata__", arg);
                        b.Write(file, parts.WithHeader(HeaderJson()));
                        b.Step($"{where}: __metadata__ = {arg}");
                        return;
                }
            }
            case "reorder":
            {
                var (tensors, metadata) = SafeTensorsBytes.Read(original);
                tensors.Reverse();
                b.Write(file, SafeTensorsBytes.Pack(tensors, metadata));
                b.Benign($"{where}: tensors stored in reverse order (header and data)");
                return;
            }
            case "pretty":
                b.Write(file, parts.WithHeader(jt.Serialize(indented: true)));
                b.Benign($"{where}: header JSON pretty-printed");
                return;
            default:
                throw new ArgumentException(op);
        }
    }
}

/// <summary>Weight files as bytes: truncations, flips, appended/prepended/inserted bytes, sparse extension.</summary>
internal sealed class WeightBytesFamily : Family
{
    public override string Name => "weight-bytes";
    public override int Weight => 180;

    private static Action<CaseBuilder> On(string baseName, string file, string op, string? arg = null) =>
        b => Apply(b.On(b.Bases.Get(baseName)), file, op, arg);

    private static readonly string[] Ops = ["truncate", "truncate", "truncate-at", "append", "prepend", "sparse", "flip", "flip", "flip-header", "flip-data", "nan-fill", "random-replace", "insert", "delete-range"];

    public override IReadOnlyList<Action<CaseBuilder>> Systematic { get; } = BuildSystematic();

    private static List<Action<CaseBuilder>> BuildSystematic()
    {
        var list = new List<Action<CaseBuilder>>();
        foreach (var (baseName, file) in new[] { ("single", WeightTargets.Model), ("sharded", WeightTargets.Shard2), ("single", WeightTargets.Adapter), ("pytorch", WeightTargets.PyTorchAdapter) })
        {
            foreach (string at in new[] { "0", "4", "8", "9", "header-1", "header", "header+1", "len-1", "half" })
                list.Add(On(baseName, file, "truncate-at", at));
            list.Add(On(baseName, file, "append", "1"));
            list.Add(On(baseName, file, "append", "4096"));
            list.Add(On(baseName, file, "prepend", "8"));
            list.Add(On(baseName, file, "sparse"));
            list.Add(On(baseName, file, "flip", "first"));
            list.Add(On(baseName, file, "flip", "7"));
            list.Add(On(baseName, file, "flip-header"));
            list.Add(On(baseName, file, "flip-data"));
            list.Add(On(baseName, file, "nan-fill"));
            list.Add(On(baseName, file, "random-replace"));
        }
        list.Add(On("demo", WeightTargets.Model, "truncate-at", "half"));
        list.Add(On("demo", WeightTargets.Model, "append", "1"));
        list.Add(On("demo", WeightTargets.Model, "flip-data"));
        return list;
    }

    public override void Random(CaseBuilder b)
    {
        var (fb, file) = WeightTargets.Any(b);
        b.On(fb);
        Apply(b, file, b.G.Pick(Ops), null);
    }

    public static void Apply(CaseBuilder b, string file, string op, string? arg)
    {
        var g = b.G;
        byte[] bytes = b.Current(file);
        bool st = file.EndsWith(".safetensors", StringComparison.Ordinal);
        long headerEnd = st ? StParts.Parse(bytes).HeaderEnd : ZipDataStart(bytes);
        string where = file;
        switch (op)
        {
            case "truncate" or "truncate-at":
            {
                long at = arg switch
                {
                    null => g.Long(0, bytes.Length),
                    "header-1" => headerEnd - 1,
                    "header" => headerEnd,
                    "header+1" => headerEnd + 1,
                    "len-1" => bytes.Length - 1,
                    "half" => bytes.Length / 2,
                    _ => long.Parse(arg, System.Globalization.CultureInfo.InvariantCulture),
                };
                b.Write(file, bytes[..(int)at]);
                b.Refuse($"{where}: truncated to {at} of {bytes.Length} bytes" + (arg is null ? "" : $" ({arg})"), "truncated weight file");
                return;
            }
            case "append":
            {
                int k = int.Parse(arg ?? g.Pick(new[] { "1", "7", "8", "4096" }), System.Globalization.CultureInfo.InvariantCulture);
                bool zeros = g.Chance(0.5);
                byte[] extra = zeros ? new byte[k] : g.Bytes(k);
                b.Write(file, [.. bytes, .. extra]);
                string d = $"{where}: {k} {(zeros ? "zero" : "random")} bytes appended";
                if (st) b.Refuse(d, "bytes that belong to no tensor"); else b.Step(d);
                return;
            }
            case "prepend":
            {
                int k = int.Parse(arg ?? g.Pick(new[] { "1", "8", "64" }), System.Globalization.CultureInfo.InvariantCulture);
                b.Write(file, [.. g.Bytes(k), .. bytes]);
                string d = $"{where}: {k} random bytes prepended";
                if (st) b.Refuse(d, "the length prefix is garbage"); else b.Step(d);
                return;
            }
            case "sparse":
                b.Op(new FileOp.Sparse(file, bytes, 5L << 30));
                b.Refuse($"{where}: extended to 5 GiB with a sparse hole after its content", "bytes that belong to no tensor / no zip end record");
                return;
            case "flip" or "flip-header" or "flip-data":
            {
                var copy = (byte[])bytes.Clone();
                var positions = new List<long>();
                int count = arg is "first" or "7" ? 1 : g.Int(1, 9);
                long lo = op == "flip-data" ? headerEnd : op == "flip-header" ? (st ? 8 : ZipStructuresStart(bytes)) : 0;
                long hi = op == "flip-header" ? (st ? headerEnd : bytes.Length) : bytes.Length;
                if (op == "flip-header" && !st) lo = Math.Min(lo, bytes.Length - 1);
                for (int i = 0; i < count; i++)
                {
                    long p = arg == "first" ? 0 : arg == "7" ? 7 : g.Long(lo, Math.Max(lo + 1, hi));
                    byte mask = (byte)g.Int(1, 256);
                    copy[p] ^= mask;
                    positions.Add(p);
                }
                b.Write(file, copy);
                string d = $"{where}: {count} byte(s) flipped at {string.Join(", ", positions)}";
                if (st && positions.Any(p => p < 8)) b.Refuse(d, "the length prefix changed");
                else b.Step(d);
                return;
            }
            case "nan-fill":
            {
                var copy = (byte[])bytes.Clone();
                if (st) Array.Fill(copy, (byte)0xFF, (int)headerEnd, copy.Length - (int)headerEnd);
                else
                {
                    var layout = ZipEntries(bytes);
                    foreach (var (name, data, length) in layout.Where(e => e.Name.Contains("/data/", StringComparison.Ordinal)))
                        Array.Fill(copy, (byte)0xFF, (int)data, (int)length);
                }
                b.Write(file, copy);
                b.Step($"{where}: every weight byte set to 0xFF (all NaN)");
                return;
            }
            case "random-replace":
                b.Write(file, g.Bytes(bytes.Length));
                b.Refuse($"{where}: replaced by {bytes.Length} random bytes", "not a weight file");
                return;
            case "insert":
            {
                long at = g.Long(0, bytes.Length);
                int k = g.Int(1, 17);
                b.Write(file, [.. bytes[..(int)at], .. g.Bytes(k), .. bytes[(int)at..]]);
                string d = $"{where}: {k} random bytes inserted at {at}";
                if (st) b.Refuse(d, "offsets no longer match the data"); else b.Step(d);
                return;
            }
            case "delete-range":
            {
                long at = g.Long(0, bytes.Length - 1);
                int k = (int)Math.Min(g.Int(1, 65), bytes.Length - at);
                b.Write(file, [.. bytes[..(int)at], .. bytes[(int)(at + k)..]]);
                string d = $"{where}: {k} bytes deleted at {at}";
                if (st) b.Refuse(d, "offsets no longer match the data"); else b.Step(d);
                return;
            }
            default:
                throw new ArgumentException(op);
        }
    }

    /// <summary>For a zip: where data.pkl's data starts (the "header" part of a checkpoint).</summary>
    private static long ZipDataStart(byte[] zip) => ZipEntries(zip).Select(e => e.Data).DefaultIfEmpty(0).First();

    private static long ZipStructuresStart(byte[] zip)
    {
        // The central directory: located through the end record (last 22 bytes of a comment-less zip).
        int end = zip.Length - 22;
        return end >= 0 ? System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(end + 16)) : 0;
    }

    /// <summary>Entries of a zip written by <see cref="TorchCheckpoint.Zip"/> (walks the local headers).</summary>
    public static List<(string Name, long Data, long Length)> ZipEntries(byte[] zip)
    {
        var list = new List<(string, long, long)>();
        long p = 0;
        while (p + 30 <= zip.Length && System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan((int)p)) == 0x04034b50)
        {
            var s = zip.AsSpan((int)p);
            long compressed = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(s[18..]);
            int nameLength = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(s[26..]);
            int extraLength = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(s[28..]);
            string name = Encoding.UTF8.GetString(s.Slice(30, nameLength));
            long data = p + 30 + nameLength + extraLength;
            list.Add((name, data, compressed));
            p = data + compressed;
        }
        return list;
    }
}

/// <summary>The adapter's weights: tensors missing, extra, renamed, reshaped, other dtypes, other layouts.</summary>
internal sealed class AdapterWeightsFamily : Family
{
    public override string Name => "adapter-weights";
    public override int Weight => 120;
    private const string File = WeightTargets.Adapter;

    private static Action<CaseBuilder> On(string baseName, string op, string? arg = null) => b => Apply(b.On(b.Bases.Get(baseName)), op, arg);

    private static readonly string[] Ops =
        ["remove", "prefix-model", "extra-mlp", "extra-lm-head", "k-gets-q", "transpose-q", "all-f16", "all-bf16", "mixed", "base-weights", "delete", "also-bin", "sharded", "sharded-missing", "nan-q", "inf-norm", "norm-2d", "f64", "flat-q"];

    public override IReadOnlyList<Action<CaseBuilder>> Systematic { get; } =
    [
        On("single", "remove", "norm.weight"), On("single", "remove", "layers.0.self_attn.o_proj.weight"), On("single", "prefix-model"), On("single", "extra-mlp"),
        On("single", "extra-lm-head"), On("single", "k-gets-q"), On("single", "transpose-q"), On("single", "all-f16"), On("single", "all-bf16"),
        On("single", "mixed"), On("single", "base-weights"), On("single", "delete"), On("single", "also-bin"), On("single", "sharded"),
        On("single", "sharded-missing"), On("single", "nan-q"), On("single", "inf-norm"), On("single", "norm-2d"), On("single", "f64"),
        On("single", "flat-q"), On("demo", "remove"), On("demo", "extra-mlp"), On("demo", "all-bf16"), On("pytorch", "also-safetensors"),
        On("sharded", "extra-lm-head"),
    ];

    public override void Random(CaseBuilder b)
    {
        double r = b.G.Double();
        b.On(r < 0.75 ? b.Bases.Single : r < 0.9 ? b.Bases.Demo : b.Bases.Sharded);
        Apply(b, b.G.Pick(Ops), null);
    }

    private static void Apply(CaseBuilder b, string op, string? arg)
    {
        var g = b.G;
        var fb = b.Base;
        int h = fb.Config.HiddenSize;
        if (op == "also-safetensors")
        {
            // pytorch base: a safetensors copy of the same adapter next to pytorch_model.bin (safetensors is read first).
            var tensors = fb.AdapterValues.Select(t => new StTensor(t.Name, "F32", t.Shape, SafeTensorsBytes.Encode("F32", t.Values)));
            b.Write(File, SafeTensorsBytes.Pack(tensors));
            b.Benign($"{File}: the same adapter as safetensors next to pytorch_model.bin");
            return;
        }
        var (list, metadata) = SafeTensorsBytes.Read(b.Current(File));
        string Pick() => arg ?? g.Pick(list.Select(t => t.Name).ToList());
        void Pack(IEnumerable<StTensor> tensors) => b.Write(File, SafeTensorsBytes.Pack(tensors, metadata));
        StTensor Get(string name) => list.First(t => t.Name == name);
        string dtype = list[0].DType;
        switch (op)
        {
            case "remove":
            {
                string name = Pick();
                Pack(list.Where(t => t.Name != name));
                b.Refuse($"{File}: tensor \"{name}\" removed", "a needed adapter tensor is missing");
                return;
            }
            case "prefix-model":
                Pack(list.Select(t => t with { Name = "model." + t.Name }));
                b.Refuse($"{File}: every tensor name prefixed with \"model.\"", "the adapter's tensors are missing (names differ)");
                return;
            case "extra-mlp":
            {
                int inter = fb.Config.IntermediateSize;
                var data = SafeTensorsBytes.Encode(dtype, Enumerable.Range(0, inter * h).Select(i => (i % 7) * 0.01f).ToArray());
                Pack([.. list, new StTensor("layers.0.mlp.gate_proj.weight", dtype, [inter, h], data)]);
                b.Refuse($"{File}: extra tensor \"layers.0.mlp.gate_proj.weight\" [{inter}, {h}] added", "an unused tensor (an MLP the adapter does not run)");
                return;
            }
            case "extra-lm-head":
            {
                int vocab = fb.Config.VocabSize;
                var data = SafeTensorsBytes.Encode(dtype, new float[vocab * h]);
                Pack([.. list, new StTensor("lm_head.weight", dtype, [vocab, h], data)]);
                b.Refuse($"{File}: extra tensor \"lm_head.weight\" [{vocab}, {h}] added", "an unused tensor (the adapter uses the base model's LM head)");
                return;
            }
            case "k-gets-q":
            {
                var q = Get("layers.0.self_attn.q_proj.weight");
                Pack(list.Select(t => t.Name == "layers.0.self_attn.k_proj.weight" ? q with { Name = t.Name } : t));
                b.Refuse($"{File}: k_proj replaced by q_proj's tensor [{string.Join(", ", q.Shape)}]", "k_proj has the wrong shape");
                return;
            }
            case "transpose-q":
            {
                var q = Get("layers.0.self_attn.q_proj.weight");
                int rows = q.Shape[0], cols = q.Shape[1], size = q.Data.Length / (rows * cols);
                var t = new byte[q.Data.Length];
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < cols; c++)
                        Array.Copy(q.Data, (r * cols + c) * size, t, (c * rows + r) * size, size);
                Pack(list.Select(x => x.Name == q.Name ? x with { Data = t, Shape = [cols, rows] } : x));
                b.Step($"{File}: q_proj values transposed ([{rows}, {cols}] → [{cols}, {rows}])");
                return;
            }
            case "all-f16" or "all-bf16" or "mixed":
            {
                string target = op == "all-bf16" ? "BF16" : "F16";
                Pack(list.Select(t => op == "mixed" && !t.Name.EndsWith("norm.weight", StringComparison.Ordinal) ? t : Convert(t, target)));
                b.Benign($"{File}: {(op == "mixed" ? "norm weights" : "every tensor")} stored as {target}");
                return;
            }
            case "base-weights":
                b.Write(File, fb.Read(fb.WeightFiles[0]));
                b.Refuse($"{File}: replaced by the base model's {fb.WeightFiles[0]}", "the adapter's tensors are missing");
                return;
            case "delete":
                b.Op(new FileOp.Delete(File));
                b.Refuse($"{File} deleted (the adapter folder keeps its config.json)", "no adapter weights");
                return;
            case "also-bin":
            {
                var pt = TorchCheckpoint.FromF32(list.Select(t => (t.Name, t.Shape, ToF32(t))));
                b.Write(WeightTargets.PyTorchAdapter, TorchCheckpoint.Write(pt).Bytes);
                b.Benign($"{WeightTargets.PyTorchAdapter}: the same adapter as a torch.save checkpoint next to model.safetensors");
                return;
            }
            case "sharded" or "sharded-missing":
            {
                b.Op(new FileOp.Delete(File));
                var first = list.Take(list.Count / 2).ToList();
                var second = list.Skip(list.Count / 2).ToList();
                const string s1 = "model-00001-of-00002.safetensors", s2 = "model-00002-of-00002.safetensors";
                b.Write($"kangaroo-adapter/{s1}", SafeTensorsBytes.Pack(first));
                if (op == "sharded") b.Write($"kangaroo-adapter/{s2}", SafeTensorsBytes.Pack(second));
                var map = new JsonObject();
                foreach (var t in first) map[t.Name] = s1;
                foreach (var t in second) map[t.Name] = s2;
                var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = list.Sum(t => t.Data.Length) }, ["weight_map"] = map };
                b.WriteText("kangaroo-adapter/model.safetensors.index.json", index.ToJsonString());
                b.Target("kangaroo-adapter/model.safetensors.index.json");
                if (op == "sharded") b.Benign("kangaroo-adapter: weights as two shards + model.safetensors.index.json");
                else b.Refuse($"kangaroo-adapter: weights as an index naming two shards, {s2} absent", "a shard is missing");
                return;
            }
            case "nan-q" or "inf-norm":
            {
                string name = op == "nan-q" ? "layers.0.self_attn.q_proj.weight" : "norm.weight";
                float value = op == "nan-q" ? float.NaN : float.PositiveInfinity;
                Pack(list.Select(t => t.Name == name ? t with { Data = SafeTensorsBytes.Encode(t.DType is "F32" or "F16" or "BF16" ? t.DType : "F32", Enumerable.Repeat(value, t.Data.Length / SafeTensorsBytes.ElementSize(t.DType)).ToArray()) } : t));
                b.Step($"{File}: every value of \"{name}\" is {value}");
                return;
            }
            case "norm-2d":
                Pack(list.Select(t => t.Name == "norm.weight" ? t with { Shape = [t.Shape[0], 1] } : t));
                b.Refuse($"{File}: \"norm.weight\" shape [{h}] → [{h}, 1]", "wrong shape");
                return;
            case "f64":
            {
                var norm = Get("layers.0.input_layernorm.weight");
                var values = ToF32(norm);
                var data = new byte[values.Length * 8];
                for (int i = 0; i < values.Length; i++) System.Buffers.Binary.BinaryPrimitives.WriteDoubleLittleEndian(data.AsSpan(8 * i), values[i]);
                Pack(list.Select(t => t.Name == norm.Name ? t with { DType = "F64", Data = data } : t));
                b.Refuse($"{File}: \"{norm.Name}\" stored as F64", "unsupported dtype");
                return;
            }
            case "flat-q":
            {
                var q = Get("layers.0.self_attn.q_proj.weight");
                Pack(list.Select(t => t.Name == q.Name ? t with { Shape = [q.Shape[0] * q.Shape[1]] } : t));
                b.Refuse($"{File}: q_proj shape flattened to [{q.Shape[0] * q.Shape[1]}]", "wrong shape");
                return;
            }
            default:
                throw new ArgumentException(op);
        }
    }

    private static float[] ToF32(StTensor t) => t.DType switch
    {
        "F32" => SafeTensorsBytes.DecodeF32(t.Data),
        "F16" => Enumerable.Range(0, t.Data.Length / 2).Select(i => (float)System.Buffers.Binary.BinaryPrimitives.ReadHalfLittleEndian(t.Data.AsSpan(2 * i))).ToArray(),
        "BF16" => Enumerable.Range(0, t.Data.Length / 2).Select(i => BitConverter.UInt32BitsToSingle((uint)System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(t.Data.AsSpan(2 * i)) << 16)).ToArray(),
        _ => throw new ArgumentException(t.DType),
    };

    private static StTensor Convert(StTensor t, string dtype) => t with { DType = dtype, Data = SafeTensorsBytes.Encode(dtype, ToF32(t)) };
}

/// <summary>model.safetensors.index.json and the shard set of a sharded checkpoint.</summary>
internal sealed class ShardIndexFamily : Family
{
    private const string Index = "model.safetensors.index.json";
    public override string Name => "shard-index";
    public override int Weight => 160;

    private static Action<CaseBuilder> Op(string op, string? arg = null) => b => Apply(b.On(b.Bases.Sharded), op, arg);

    private static readonly string[] Ops =
    [
        "weight-map", "entry-value", "entry-value", "entry-value", "drop-entry", "add-entry", "add-entry-missing-shard", "duplicate-key",
        "weight-map-twice", "metadata", "root", "syntax", "reorder", "all-to-shard1", "swap-shards", "delete-shard", "shard-symlink",
        "extra-shard-file", "also-single", "extra-tensor", "duplicate-tensor", "delete-index", "rename-in-index", "empty-shard",
    ];

    public override IReadOnlyList<Action<CaseBuilder>> Systematic { get; } =
    [
        Op("weight-map", "remove"), Op("weight-map", "null"), Op("weight-map", "[]"), Op("weight-map", "\"model-00001-of-00002.safetensors\""),
        Op("weight-map", "5"), Op("weight-map", "{}"),
        Op("entry-value", "\"model-00003-of-00003.safetensors\""), Op("entry-value", "\"\""), Op("entry-value", "\".\""), Op("entry-value", "\"..\""),
        Op("entry-value", "\"../model-00001-of-00002.safetensors\""), Op("entry-value", "\"/etc/passwd\""), Op("entry-value", "\"/dev/zero\""),
        Op("entry-value", "\"sub/x.safetensors\""), Op("entry-value", "\"a\\\\b.safetensors\""), Op("entry-value", "5"), Op("entry-value", "null"),
        Op("entry-value", "{\"file\": \"model-00001-of-00002.safetensors\"}"), Op("entry-value", "other-shard"),
        Op("entry-value", "\"model.safetensors.index.json\""), Op("entry-value", "\"config.json\""),
        Op("drop-entry"), Op("add-entry"), Op("add-entry-missing-shard"), Op("duplicate-key"), Op("weight-map-twice"),
        Op("metadata", "remove"), Op("metadata", "{\"total_size\": \"x\"}"), Op("metadata", "[]"), Op("metadata", "{\"total_size\": 1e400}"),
        Op("root", "[]"), Op("root", "\"x\""), Op("root", ""),
        Op("syntax", "truncate"), Op("syntax", "line-comment"), Op("syntax", "trailing-comma"), Op("syntax", "bom"), Op("syntax", "deep-nesting"),
        Op("reorder"), Op("all-to-shard1"), Op("swap-shards"), Op("delete-shard"), Op("shard-symlink"), Op("extra-shard-file"), Op("also-single"),
        Op("extra-tensor"), Op("duplicate-tensor"), Op("delete-index"), Op("rename-in-index"), Op("empty-shard"),
    ];

    public override void Random(CaseBuilder b) => Apply(b.On(b.Bases.Sharded), b.G.Pick(Ops), null);

    private static void Apply(CaseBuilder b, string op, string? arg)
    {
        var g = b.G;
        var fb = b.Base;
        var jt = JsonText.Parse(b.CurrentText(Index));
        var obj = jt.Object!;
        var map = (JsonObject)obj["weight_map"]!;
        var tensors = map.Select(p => p.Key).ToList();
        string tensor = g.Pick(tensors);
        string shardOf = map[tensor]!.GetValue<string>();
        string other = shardOf == WeightTargets.Shard1 ? WeightTargets.Shard2 : WeightTargets.Shard1;
        void WriteIndex() => b.WriteText(Index, jt.Serialize());
        b.Field("weight_map");
        switch (op)
        {
            case "weight-map":
                arg ??= g.Pick(new[] { "remove", "null", "[]", "\"x\"", "5", "{}" });
                if (arg == "remove") obj.Remove("weight_map");
                else jt.SetRaw(obj, "weight_map", arg);
                WriteIndex();
                b.Refuse($"{Index}: \"weight_map\" {(arg == "remove" ? "removed" : "= " + arg)}", "no tensor → shard map");
                return;
            case "entry-value":
            {
                arg ??= g.Pick(new[] { "\"model-00003-of-00003.safetensors\"", "\"\"", "\".\"", "\"..\"", "\"../" + shardOf + "\"", "\"/etc/passwd\"", "\"sub/x.safetensors\"", "5", "null", "other-shard", "\"" + shardOf.ToUpperInvariant() + "\"" });
                string raw = arg == "other-shard" ? JsonText.Literal(other) : arg;
                jt.SetRaw(map, tensor, raw);
                WriteIndex();
                b.Refuse($"{Index}: weight_map[\"{tensor}\"] = {raw} (was \"{shardOf}\")", "the index places a tensor where it is not");
                b.Field(tensor);
                return;
            }
            case "drop-entry":
                map.Remove(tensor);
                WriteIndex();
                b.Refuse($"{Index}: weight_map entry \"{tensor}\" removed (the shard still holds it)", "a tensor in a shard but not in the index");
                b.Field(tensor);
                return;
            case "add-entry" or "add-entry-missing-shard":
            {
                string name = g.Pick(new[] { "model.layers.99.mlp.up_proj.weight", "lm_head.bias", "model.extra" });
                string shard = op == "add-entry" ? shardOf : "model-00003-of-00003.safetensors";
                jt.SetRaw(map, name, JsonText.Literal(shard));
                WriteIndex();
                b.Refuse($"{Index}: weight_map entry \"{name}\" → \"{shard}\" added (no shard holds it)", "the index names a tensor no shard holds");
                b.Field(name);
                return;
            }
            case "duplicate-key":
            {
                string text = jt.Serialize();
                int open = text.IndexOf("\"weight_map\": {", StringComparison.Ordinal) + "\"weight_map\": {".Length;
                b.WriteText(Index, text.Insert(open, $"\n    \"{tensor}\": \"{other}\","));
                b.Refuse($"{Index}: weight_map key \"{tensor}\" appears twice (first → \"{other}\", then \"{shardOf}\")", "conflicting entries");
                b.Field(tensor);
                return;
            }
            case "weight-map-twice":
            {
                string text = jt.Serialize();
                int open = text.IndexOf('{') + 1;
                b.WriteText(Index, text.Insert(open, "\n  \"weight_map\": {},"));
                b.Step($"{Index}: \"weight_map\" appears twice (an empty one first)");
                return;
            }
            case "metadata":
                arg ??= g.Pick(new[] { "remove", "{\"total_size\": \"x\"}", "[]", "{\"total_size\": 1e400}", "5" });
                if (arg == "remove")
                {
                    obj.Remove("metadata");
                    WriteIndex();
                    b.Benign($"{Index}: \"metadata\" removed");
                }
                else
                {
                    jt.SetRaw(obj, "metadata", arg);
                    WriteIndex();
                    b.Step($"{Index}: \"metadata\" = {arg}");
                }
                return;
            case "root":
                arg ??= g.Pick(new[] { "[]", "\"x\"", "" });
                b.WriteText(Index, arg);
                b.Refuse($"{Index}: the whole file is {(arg.Length == 0 ? "empty" : arg)}", "no weight map");
                return;
            case "syntax":
            {
                var (bytes, d, _) = JsonSyntax.Apply(g, jt.Serialize(), arg ?? g.Pick(new[] { "truncate", "line-comment", "trailing-comma", "bom", "deep-nesting", "delete-char", "insert-char", "invalid-utf8" }));
                b.Write(Index, bytes);
                if (d.StartsWith("truncated", StringComparison.Ordinal)) b.Refuse($"{Index}: {d}", "truncated index");
                else b.Step($"{Index}: {d}");
                return;
            }
            case "reorder":
            {
                var pairs = map.ToList();
                map.Clear();
                for (int i = pairs.Count - 1; i >= 0; i--) map[pairs[i].Key] = pairs[i].Value;
                WriteIndex();
                b.Benign($"{Index}: weight_map entries in reverse order");
                return;
            }
            case "all-to-shard1":
                foreach (string t in tensors) map[t] = WeightTargets.Shard1;
                WriteIndex();
                b.Refuse($"{Index}: every tensor mapped to \"{WeightTargets.Shard1}\"", "the index places tensors where they are not");
                return;
            case "swap-shards":
                foreach (string t in tensors) map[t] = map[t]!.GetValue<string>() == WeightTargets.Shard1 ? WeightTargets.Shard2 : WeightTargets.Shard1;
                WriteIndex();
                b.Refuse($"{Index}: every tensor mapped to the other shard", "the index places tensors where they are not");
                return;
            case "delete-shard":
                b.Op(new FileOp.Delete(WeightTargets.Shard2));
                b.Refuse($"{WeightTargets.Shard2} deleted", "a shard is missing");
                return;
            case "shard-symlink":
                b.Op(new FileOp.Symlink(WeightTargets.Shard2, fb.FullPath(WeightTargets.Shard1)));
                b.Refuse($"{WeightTargets.Shard2} is a symlink to {WeightTargets.Shard1}", "a shard holds the wrong tensors");
                return;
            case "extra-shard-file":
                b.Write("model-00003-of-00003.safetensors", fb.Read(WeightTargets.Shard1));
                b.Benign("model-00003-of-00003.safetensors: an unreferenced copy of shard 1 in the folder");
                return;
            case "also-single":
                b.Write(WeightTargets.Model, b.Bases.Single.Read(WeightTargets.Model));
                b.Step($"{WeightTargets.Model} present next to the index (the index takes precedence)");
                return;
            case "extra-tensor":
            {
                var (list, metadata) = SafeTensorsBytes.Read(b.Current(WeightTargets.Shard2));
                int h = fb.Config.HiddenSize;
                list.Add(new StTensor("model.layers.0.mlp.extra.weight", "F32", [h], SafeTensorsBytes.Encode("F32", new float[h])));
                b.Write(WeightTargets.Shard2, SafeTensorsBytes.Pack(list, metadata));
                jt.SetRaw(map, "model.layers.0.mlp.extra.weight", JsonText.Literal(WeightTargets.Shard2));
                WriteIndex();
                b.Target(WeightTargets.Shard2);
                b.Refuse($"{WeightTargets.Shard2} and {Index}: an extra tensor \"model.layers.0.mlp.extra.weight\" in the shard and the index", "an unused tensor in the checkpoint");
                b.Field("model.layers.0.mlp.extra.weight");
                return;
            }
            case "duplicate-tensor":
            {
                var (list1, _) = SafeTensorsBytes.Read(fb.Read(WeightTargets.Shard1));
                var (list2, metadata) = SafeTensorsBytes.Read(b.Current(WeightTargets.Shard2));
                var copy = g.Pick(list1);
                list2.Add(copy);
                b.Write(WeightTargets.Shard2, SafeTensorsBytes.Pack(list2, metadata));
                b.Refuse($"{WeightTargets.Shard2}: holds a copy of \"{copy.Name}\" (also in {WeightTargets.Shard1})", "a tensor in two shards");
                return;
            }
            case "delete-index":
                b.Op(new FileOp.Delete(Index));
                b.Refuse($"{Index} deleted (only the shards remain)", "no weights a loader can find");
                return;
            case "rename-in-index":
            {
                var value = map[tensor]!.DeepClone();
                map.Remove(tensor);
                map[tensor + ".renamed"] = value;
                WriteIndex();
                b.Refuse($"{Index}: weight_map key \"{tensor}\" renamed \"{tensor}.renamed\"", "index and shards disagree");
                b.Field(tensor);
                return;
            }
            case "empty-shard":
                b.Write(WeightTargets.Shard2, SafeTensorsBytes.Pack([]));
                b.Refuse($"{WeightTargets.Shard2}: a valid safetensors file with no tensors", "a shard lacks its tensors");
                return;
            default:
                throw new ArgumentException(op);
        }
    }
}
