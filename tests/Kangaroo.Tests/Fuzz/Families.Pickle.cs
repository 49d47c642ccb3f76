using System.Buffers.Binary;
using System.Text;

namespace Kangaroo.Tests.Fuzz;

/// <summary>
/// The adapter as pytorch_model.bin (zip + pickle): malicious pickles (GLOBAL os.system, builtins.eval, posix.system,
/// REDUCE, INST/OBJ/NEWOBJ/STACK_GLOBAL/BUILD), deep nesting, huge memo indices and lengths, bad persistent ids and
/// tensor arguments, state-dict and zip-level damage. Every payload would create <see cref="FuzzCase.Marker"/> if run.
/// </summary>
internal sealed class AdapterPickleFamily : Family
{
    private const string File = WeightTargets.PyTorchAdapter;
    public override string Name => "adapter-pickle";
    public override int Weight => 260;

    /// <summary>Where payloads would write: one folder per process, checked empty after every case.</summary>
    public static readonly string MarkerDirectory = Path.Combine(Path.GetTempPath(), $"kangaroo-fuzz-markers-{Environment.ProcessId}");

    private static Action<CaseBuilder> Op(string op, string? arg = null) => b => Apply(b.On(b.Bases.PyTorch), op, arg);

    private static readonly string[] Malicious =
    [
        "os-system", "posix-system", "nt-system", "builtins-eval", "builtins-exec", "builtin-eval", "subprocess-popen", "subprocess-check-output",
        "getattr-chain", "builtins-open", "value-os-system", "storage-type-os-system", "size-eval", "persid-call", "inst", "obj", "newobj",
        "stack-global", "build-setstate", "copyreg-reconstructor", "ordereddict-args", "bytearray-huge", "array-value", "decimal-huge",
        "nested-pickle", "codecs-encode", "runpy", "numpy-reconstruct", "torch-load", "builtins-compile",
    ];

    private static readonly string[] Structural =
    [
        "deep-lists", "deep-marks", "deep-tuples", "deep-dicts", "memo-huge-valid", "memo-missing", "memo-small-missing", "memo-many", "unicode-huge",
        "binbytes-huge", "unicode8-huge", "bytes8-huge", "long4-huge", "frame-huge", "proto-6", "proto-255", "unknown-opcode", "empty-pickle",
        "proto-only", "no-stop", "stop-only", "root-list", "root-none", "root-int", "root-str", "int-key", "value-none", "persid-string",
        "persid-4", "persid-type-string", "persid-key-int", "numel-negative", "numel-huge", "storage-missing", "storage-traversal", "storage-unknown",
        "storage-double", "storage-half", "size-stride-mismatch", "size-negative", "size-huge", "stride-zero", "stride-transposed", "offset-beyond",
        "offset-negative", "offset-huge", "v3-int64", "v3-float32", "v1", "parameter", "shared-storage", "missing-tensor", "extra-tensor",
        "renamed-tensors", "duplicate-key", "location-cuda", "truncate-pickle", "flip-pickle",
    ];

    private static readonly string[] Zip =
    [
        "no-data-pkl", "two-data-pkl", "prefix-archive", "prefix-empty", "deflate-pickle", "deflate-storage", "byteorder-big", "byteorder-middle",
        "no-byteorder", "encrypted", "omit-storage", "end-comment", "cd-offset", "entry-count", "local-signature", "central-signature",
        "name-length", "size-saturated", "trailing-garbage", "leading-garbage", "legacy", "safetensors-inside", "tar", "flip-zip",
    ];

    public override IReadOnlyList<Action<CaseBuilder>> Systematic { get; } =
        [.. Malicious.Select(m => Op(m)), .. Structural.Select(s => Op(s)), .. Zip.Select(z => Op(z))];

    public override void Random(CaseBuilder b)
    {
        b.On(b.Bases.PyTorch);
        double r = b.G.Double();
        string op = r < 0.3 ? b.G.Pick(Malicious) : r < 0.55 ? b.G.Pick(Structural) : r < 0.7 ? b.G.Pick(Zip)
            : r < 0.85 ? "flip-pickle" : r < 0.95 ? "truncate-pickle" : "flip-zip";
        Apply(b, op, null);
    }

    private static void Apply(CaseBuilder b, string op, string? arg)
    {
        var g = b.G;
        var tensors = TorchCheckpoint.FromF32(b.Base.AdapterValues);
        string marker = Path.Combine(MarkerDirectory, $"{b.Base.Name}-{op}-{g.Int(1_000_000_000)}");
        string touch = $"touch {marker}";
        string py = $"open('{marker}', 'w').write('pwned')";
        string pyOs = $"__import__('os').system('{touch}')";
        const string d0 = File + ": ";

        void Pickle(byte[] pickle, string description, bool refuse = true, string reason = "not a state dict of tensors")
        {
            b.Write(File, TorchCheckpoint.Write(tensors, new TorchWriteOptions { Pickle = pickle }).Bytes);
            if (refuse) b.Refuse(d0 + description, reason); else b.Step(d0 + description);
        }

        void Malicious(byte[] pickle, string description)
        {
            b.Marker = marker;
            Pickle(pickle, description + " (payload would create <marker>)", true, "a pickle that is not a plain state dict (code it asks for must never run)");
        }

        byte[] StateDictWith(Func<PickleBuilder, PtTensor, bool> value) => TorchCheckpoint.StateDictPickle(tensors, value);
        PickleBuilder P() => new PickleBuilder().Proto(2);
        var victim = g.Pick(tensors);

        switch (op)
        {
            // ---- Code execution attempts: the root object, a value, or an argument is a call to a dangerous global. ----
            case "os-system": Malicious(P().Call("os", "system", touch).Stop().ToArray(), "root = os.system(\"touch <marker>\") via GLOBAL + REDUCE"); return;
            case "posix-system": Malicious(P().Call("posix", "system", touch).Stop().ToArray(), "root = posix.system(\"touch <marker>\")"); return;
            case "nt-system": Malicious(P().Call("nt", "system", touch).Stop().ToArray(), "root = nt.system(\"touch <marker>\")"); return;
            case "builtins-eval": Malicious(P().Call("builtins", "eval", pyOs).Stop().ToArray(), "root = builtins.eval(\"__import__('os').system(...)\")"); return;
            case "builtins-exec": Malicious(P().Call("builtins", "exec", py).Stop().ToArray(), "root = builtins.exec(\"open(<marker>, 'w')...\")"); return;
            case "builtin-eval": Malicious(P().Call("__builtin__", "eval", pyOs).Stop().ToArray(), "root = __builtin__.eval(...) (Python 2 name)"); return;
            case "builtins-compile": Malicious(P().Call("builtins", "compile", py, "<x>", "exec").Stop().ToArray(), "root = builtins.compile(...)"); return;
            case "subprocess-popen":
            {
                var p = P().Global("subprocess", "Popen").Mark().Mark().Unicode("touch").Unicode(marker).Op((byte)'l').Tuple().Reduce().Stop();
                Malicious(p.ToArray(), "root = subprocess.Popen([\"touch\", <marker>])");
                return;
            }
            case "subprocess-check-output":
            {
                var p = P().Global("subprocess", "check_output").Mark().Mark().Unicode("touch").Unicode(marker).Op((byte)'l').Tuple().Reduce().Stop();
                Malicious(p.ToArray(), "root = subprocess.check_output([\"touch\", <marker>])");
                return;
            }
            case "getattr-chain":
            {
                // getattr(__import__('os'), 'system')('touch M')
                var p = P().Global("builtins", "getattr").Mark().Call("builtins", "__import__", "os").Unicode("system").Tuple().Reduce()
                    .Mark().Unicode(touch).Tuple().Reduce().Stop();
                Malicious(p.ToArray(), "root = getattr(__import__('os'), 'system')(\"touch <marker>\")");
                return;
            }
            case "builtins-open": Malicious(P().Call("builtins", "open", marker, "w").Stop().ToArray(), "root = builtins.open(<marker>, 'w')"); return;
            case "value-os-system":
                Malicious(StateDictWith((p, t) => { if (t != victim) return false; p.Call("os", "system", touch); return true; }),
                    $"state dict value of \"{victim.Name}\" = os.system(\"touch <marker>\")");
                return;
            case "storage-type-os-system":
                Malicious(StateDictWith((p, t) =>
                {
                    if (t != victim) return false;
                    p.Global("torch._utils", "_rebuild_tensor_v2").Mark()
                        .Mark().Unicode("storage").Call("os", "system", touch).Unicode(t.Key).Unicode("cpu").Int(t.Numel).Tuple().BinPersId()
                        .Int(0).IntTuple(t.Size).IntTuple(t.Stride).NewFalse().Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple().Reduce();
                    return true;
                }), $"\"{victim.Name}\"'s storage type is the result of os.system(\"touch <marker>\")");
                return;
            case "size-eval":
                Malicious(StateDictWith((p, t) =>
                {
                    if (t != victim) return false;
                    p.Global("torch._utils", "_rebuild_tensor_v2").Mark();
                    TorchCheckpoint.WriteStorage(p, t);
                    p.Int(0).Call("builtins", "eval", pyOs).IntTuple(t.Stride).NewFalse().Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple().Reduce();
                    return true;
                }), $"\"{victim.Name}\"'s size argument is builtins.eval(...)");
                return;
            case "persid-call":
                Malicious(StateDictWith((p, t) =>
                {
                    if (t != victim) return false;
                    p.Global("torch._utils", "_rebuild_tensor_v2").Mark().Call("os", "system", touch).BinPersId()
                        .Int(0).IntTuple(t.Size).IntTuple(t.Stride).NewFalse().Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple().Reduce();
                    return true;
                }), $"\"{victim.Name}\"'s persistent id is os.system(...)'s result");
                return;
            case "inst": Malicious(P().Mark().Unicode(touch).Inst("os", "system").Stop().ToArray(), "root = INST os.system (MARK \"touch <marker>\" INST)"); return;
            case "obj": Malicious(P().Mark().Global("os", "system").Unicode(touch).Obj().Stop().ToArray(), "root = OBJ (MARK os.system \"touch <marker>\" OBJ)"); return;
            case "newobj": Malicious(P().Global("os", "system").Mark().Unicode(touch).Tuple().NewObj().Stop().ToArray(), "root = NEWOBJ os.system(\"touch <marker>\")"); return;
            case "stack-global":
            {
                var p = new PickleBuilder().Proto(4).ShortUnicode("os").Memoize().ShortUnicode("system").Memoize().StackGlobal().Memoize()
                    .ShortUnicode(touch).Memoize().Op(0x85).Memoize().Reduce().Memoize().Stop();
                Malicious(p.ToArray(), "root = STACK_GLOBAL 'os' 'system' + REDUCE (protocol 4)");
                return;
            }
            case "build-setstate":
            {
                var p = P().Global("os", "system").EmptyTuple().NewObj().Mark().Unicode("__setstate__").Global("os", "system").Op((byte)'d').Build()
                    .Unicode(touch).Build().Stop();
                Malicious(p.ToArray(), "root = an os.system object BUILT with {'__setstate__': os.system} and state \"touch <marker>\"");
                return;
            }
            case "copyreg-reconstructor":
            {
                var p = P().Global("copy_reg", "_reconstructor").Mark().Global("os", "system").Global("builtins", "object").Unicode(touch).Tuple().Reduce().Stop();
                Malicious(p.ToArray(), "root = copy_reg._reconstructor(os.system, object, \"touch <marker>\")");
                return;
            }
            case "ordereddict-args":
            {
                var p = P().Global("collections", "OrderedDict").Mark().Call("os", "system", touch).Tuple().Reduce().Stop();
                Malicious(p.ToArray(), "root = collections.OrderedDict(os.system(...))");
                return;
            }
            case "bytearray-huge":
            {
                var p = P().Global("builtins", "bytearray").Mark().Int(int.MaxValue).Tuple().Reduce().Stop();
                Pickle(p.ToArray(), "root = builtins.bytearray(2147483647)");
                return;
            }
            case "array-value":
                Pickle(StateDictWith((p, t) =>
                {
                    if (t != victim) return false;
                    p.Global("array", "array").Mark().Unicode("f").Mark().Float(1).Float(2).Op((byte)'l').Tuple().Reduce();
                    return true;
                }), $"state dict value of \"{victim.Name}\" = array.array('f', [1.0, 2.0])");
                return;
            case "decimal-huge":
                Pickle(P().Call("decimal", "Decimal", "1e999999999").Stop().ToArray(), "root = decimal.Decimal('1e999999999')");
                return;
            case "nested-pickle":
            {
                byte[] inner = P().Call("os", "system", touch).Stop().ToArray();
                var p = P().Global("pickle", "loads").Mark().BinBytesDeclared((uint)inner.Length, inner).Tuple().Reduce().Stop();
                Malicious(p.ToArray(), "root = pickle.loads(<a pickle calling os.system>)");
                return;
            }
            case "codecs-encode":
                Pickle(StateDictWith((p, t) =>
                {
                    if (t != victim) return false;
                    p.Call("_codecs", "encode", "touch", "latin1");
                    return true;
                }), $"state dict value of \"{victim.Name}\" = _codecs.encode('touch', 'latin1') (bytes)");
                return;
            case "runpy": Malicious(P().Call("runpy", "_run_code", py, "{}").Stop().ToArray(), "root = runpy._run_code(\"open(<marker>)...\")"); return;
            case "numpy-reconstruct":
                Pickle(StateDictWith((p, t) =>
                {
                    if (t != victim) return false;
                    p.Global("numpy.core.multiarray", "_reconstruct").Mark().Global("numpy", "ndarray").Mark().Int(0).Op(0x85).Unicode("b").Tuple().Tuple().Reduce();
                    return true;
                }), $"state dict value of \"{victim.Name}\" = numpy.core.multiarray._reconstruct(numpy.ndarray, ...)");
                return;
            case "torch-load": Malicious(P().Call("torch", "load", marker).Stop().ToArray(), "root = torch.load(<marker>)"); return;

            // ---- Structure: nesting, memo, lengths, opcodes. ----
            case "deep-lists":
            {
                int depth = 100_000;
                var p = P().Global("collections", "OrderedDict").EmptyTuple().Reduce().Unicode("x");
                for (int i = 0; i < depth; i++) p.EmptyList();
                for (int i = 0; i < depth - 1; i++) p.Append();
                Pickle(p.SetItem().Stop().ToArray(), $"state dict value \"x\" = lists nested {depth} deep");
                return;
            }
            case "deep-marks":
            {
                var p = P();
                for (int i = 0; i < 1_000_000; i++) p.Mark();
                Pickle(p.Stop().ToArray(), "1,000,000 MARKs then STOP");
                return;
            }
            case "deep-tuples":
            {
                int depth = 100_000;
                var p = P();
                for (int i = 0; i < depth; i++) p.Mark();
                for (int i = 0; i < depth; i++) p.Tuple();
                Pickle(p.Stop().ToArray(), $"root = tuples nested {depth} deep");
                return;
            }
            case "deep-dicts":
            {
                int depth = 100_000;
                var p = P();
                for (int i = 0; i < depth; i++) p.EmptyDict().Unicode("k");
                p.None();
                for (int i = 0; i < depth; i++) p.SetItem();
                Pickle(p.Stop().ToArray(), $"root = dicts nested {depth} deep");
                return;
            }
            case "memo-huge-valid":
            {
                var body = TorchCheckpoint.StateDictPickle(tensors);
                // PROTO 2, then the OrderedDict ... : put the dict at memo index 0xFFFFFFFF right after it is created, then get it back at the end.
                int reduce = Array.IndexOf(body, (byte)'R');
                byte[] put = [(byte)'r', 0xFF, 0xFF, 0xFF, 0xFF];
                byte[] tail = body[(reduce + 1)..^1];
                byte[] end = [(byte)'0', (byte)'j', 0xFF, 0xFF, 0xFF, 0xFF, (byte)'.'];
                Pickle([.. body[..(reduce + 1)], .. put, .. tail, .. end], "the state dict memoized at index 0xFFFFFFFF (LONG_BINPUT), popped, fetched back (LONG_BINGET)", refuse: false);
                return;
            }
            case "memo-missing": Pickle(P().LongBinGet(0xFFFFFFFF).Stop().ToArray(), "LONG_BINGET 0xFFFFFFFF with an empty memo"); return;
            case "memo-small-missing": Pickle(P().EmptyDict().BinGet(5).Stop().ToArray(), "BINGET 5 never put"); return;
            case "memo-many":
            {
                var p = P().EmptyDict();
                for (uint i = 0; i < 100_000; i++) p.LongBinPut(0x7FFFFFFF - i);
                Pickle(p.Stop().ToArray(), "an empty dict memoized under 100,000 indices near 2^31", refuse: true, reason: "an empty state dict (no tensors)");
                return;
            }
            case "unicode-huge": Pickle(P().UnicodeDeclared(0x7FFFFFFF, "abc"u8).Stop().ToArray(), "BINUNICODE declaring 2^31-1 bytes, 3 present"); return;
            case "binbytes-huge": Pickle(P().BinBytesDeclared(0xFFFFFFFF, "abc"u8).Stop().ToArray(), "BINBYTES declaring 2^32-1 bytes, 3 present"); return;
            case "unicode8-huge": Pickle(new PickleBuilder().Proto(4).BinUnicode8Declared(1UL << 62, "abc"u8).Stop().ToArray(), "BINUNICODE8 declaring 2^62 bytes"); return;
            case "bytes8-huge": Pickle(new PickleBuilder().Proto(4).BinBytes8Declared(1UL << 63, "abc"u8).Stop().ToArray(), "BINBYTES8 declaring 2^63 bytes"); return;
            case "long4-huge": Pickle(P().Long4Declared(0x7FFFFFFF, [1, 2, 3]).Stop().ToArray(), "LONG4 declaring 2^31-1 bytes"); return;
            case "frame-huge": Pickle([.. new PickleBuilder().Proto(4).Frame(1UL << 60).ToArray(), .. TorchCheckpoint.StateDictPickle(tensors)[2..]], "FRAME of 2^60 bytes before the state dict", refuse: false); return;
            case "proto-6": Pickle([0x80, 6, .. TorchCheckpoint.StateDictPickle(tensors)[2..]], "PROTO 6 (newer than any Python)"); return;
            case "proto-255": Pickle([0x80, 255, .. TorchCheckpoint.StateDictPickle(tensors)[2..]], "PROTO 255"); return;
            case "unknown-opcode": Pickle([0x80, 2, 0xFF, (byte)'.'], "unknown opcode 0xFF"); return;
            case "empty-pickle": Pickle([], "data.pkl is empty"); return;
            case "proto-only": Pickle([0x80, 2], "data.pkl is only PROTO 2"); return;
            case "no-stop": Pickle(TorchCheckpoint.StateDictPickle(tensors)[..^1], "the state dict without its STOP opcode"); return;
            case "stop-only": Pickle([0x80, 2, (byte)'.'], "STOP with an empty stack"); return;
            case "root-list":
            {
                var p = P().EmptyList().Mark();
                foreach (var t in tensors) TorchCheckpoint.WriteTensor(p, t);
                Pickle(p.Appends().Stop().ToArray(), "root is a list of tensors");
                return;
            }
            case "root-none": Pickle(P().None().Stop().ToArray(), "root is None"); return;
            case "root-int": Pickle(P().Int(42).Stop().ToArray(), "root is the integer 42"); return;
            case "root-str": Pickle(P().Unicode("state_dict").Stop().ToArray(), "root is a string"); return;
            case "int-key":
            {
                var p = P().Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark();
                foreach (var t in tensors)
                {
                    if (t == victim) p.Int(7); else p.Unicode(t.Name);
                    TorchCheckpoint.WriteTensor(p, t);
                }
                Pickle(p.SetItems().Stop().ToArray(), $"\"{victim.Name}\"'s key is the integer 7");
                return;
            }
            case "value-none": Pickle(StateDictWith((p, t) => { if (t != victim) return false; p.None(); return true; }), $"\"{victim.Name}\" = None"); return;
            case "persid-string" or "persid-4" or "persid-type-string" or "persid-key-int":
                Pickle(StateDictWith((p, t) =>
                {
                    if (t != victim) return false;
                    p.Global("torch._utils", "_rebuild_tensor_v2").Mark();
                    switch (op)
                    {
                        case "persid-string": p.Unicode(t.Key).BinPersId(); break;
                        case "persid-4": p.Mark().Unicode("storage").Global("torch", t.StorageType).Unicode(t.Key).Unicode("cpu").Tuple().BinPersId(); break;
                        case "persid-type-string": p.Mark().Unicode("storage").Unicode(t.StorageType).Unicode(t.Key).Unicode("cpu").Int(t.Numel).Tuple().BinPersId(); break;
                        default: p.Mark().Unicode("storage").Global("torch", t.StorageType).Int(0).Unicode("cpu").Int(t.Numel).Tuple().BinPersId(); break;
                    }
                    p.Int(0).IntTuple(t.Size).IntTuple(t.Stride).NewFalse().Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple().Reduce();
                    return true;
                }), $"\"{victim.Name}\"'s persistent id is malformed ({op})");
                return;
            case "numel-negative" or "numel-huge" or "storage-missing" or "storage-traversal" or "storage-unknown" or "storage-double" or "storage-half"
                or "size-stride-mismatch" or "size-negative" or "size-huge" or "stride-zero" or "stride-transposed" or "offset-beyond" or "offset-negative"
                or "offset-huge" or "v3-int64" or "v3-float32" or "v1" or "parameter" or "location-cuda":
            {
                var t2 = op switch
                {
                    "numel-negative" => victim with { Numel = -1 },
                    "numel-huge" => victim with { Numel = 1L << 62 },
                    "storage-missing" => victim with { Key = "99" },
                    "storage-traversal" => victim with { Key = "../../../../etc/passwd" },
                    "storage-unknown" => victim with { StorageType = "FooStorage" },
                    "storage-double" => victim with { StorageType = "DoubleStorage", Numel = victim.Numel / 2 },
                    "storage-half" => victim with { StorageType = "HalfStorage" },
                    "size-stride-mismatch" => victim with { Stride = [.. victim.Stride, 1] },
                    "size-negative" => victim with { Size = [-victim.Size[0], .. victim.Size[1..]] },
                    "size-huge" => victim with { Size = [1L << 40, .. victim.Size[1..]] },
                    "stride-zero" => victim with { Stride = victim.Stride.Select(_ => 0L).ToArray() },
                    "stride-transposed" => victim with { Stride = victim.Stride.Reverse().ToArray() },
                    "offset-beyond" => victim with { Offset = victim.Numel },
                    "offset-negative" => victim with { Offset = -1 },
                    "offset-huge" => victim with { Offset = 1L << 62 },
                    "v3-int64" => victim with { Rebuild = "v3", DTypeName = "int64" },
                    "v3-float32" => victim with { Rebuild = "v3" },
                    "v1" => victim with { Rebuild = "v1" },
                    "parameter" => victim with { Rebuild = "param" },
                    _ => victim with { Location = "cuda:0" },
                };
                if (op is "stride-transposed" && victim.Size.Length < 2) t2 = victim with { Stride = [2] };
                var list = tensors.Select(t => t == victim ? t2 : t).ToList();
                var options = new TorchWriteOptions { Pickle = TorchCheckpoint.StateDictPickle(list) };
                b.Write(File, TorchCheckpoint.Write(op is "storage-missing" or "storage-traversal" ? tensors : list, options).Bytes);
                string d = $"{d0}\"{victim.Name}\": {op} ({Summary(t2)})";
                bool harmless = op is "v3-float32" or "v1" or "parameter" or "location-cuda";
                if (harmless) b.Benign(d);
                else if (op == "storage-half") b.Step(d + " (bytes reinterpreted)");
                else b.Refuse(d, "the tensor cannot be read as declared");
                return;
            }
            case "shared-storage":
            {
                var q = tensors.First(t => t.Name.Contains("q_proj", StringComparison.Ordinal));
                var o = tensors.First(t => t.Name.Contains("o_proj", StringComparison.Ordinal));
                var list = tensors.Select(t => t == o ? t with { Key = q.Key, Data = q.Data } : t).ToList();
                b.Write(File, TorchCheckpoint.Write(list).Bytes);
                b.Step($"{d0}o_proj is a view of q_proj's storage (one storage, two tensors)");
                return;
            }
            case "missing-tensor":
                b.Write(File, TorchCheckpoint.Write(tensors.Where(t => t != victim).ToList()).Bytes);
                b.Refuse($"{d0}\"{victim.Name}\" missing from the state dict", "a needed adapter tensor is missing");
                return;
            case "extra-tensor":
            {
                var extra = TorchCheckpoint.FromF32([("layers.0.mlp.up_proj.weight", [b.Base.Config.IntermediateSize, b.Base.Config.HiddenSize], new float[b.Base.Config.IntermediateSize * b.Base.Config.HiddenSize])])[0]
                    with { Key = "extra" };
                b.Write(File, TorchCheckpoint.Write([.. tensors, extra]).Bytes);
                b.Refuse($"{d0}extra tensor \"layers.0.mlp.up_proj.weight\" in the state dict", "an unused tensor (an MLP the adapter does not run)");
                return;
            }
            case "renamed-tensors":
                b.Write(File, TorchCheckpoint.Write(tensors.Select(t => t with { Name = "module." + t.Name }).ToList()).Bytes);
                b.Refuse($"{d0}every key prefixed \"module.\" (a DataParallel checkpoint)", "the adapter's tensors are missing (names differ)");
                return;
            case "duplicate-key":
            {
                var p = P().Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark();
                foreach (var t in tensors) { p.Unicode(t.Name); TorchCheckpoint.WriteTensor(p, t); }
                p.Unicode(victim.Name);
                TorchCheckpoint.WriteTensor(p, victim);
                Pickle(p.SetItems().Stop().ToArray(), $"key \"{victim.Name}\" set twice (same tensor)", refuse: false);
                return;
            }
            case "truncate-pickle":
            {
                byte[] pickle = TorchCheckpoint.StateDictPickle(tensors);
                int at = g.Int(pickle.Length);
                Pickle(pickle[..at], $"data.pkl truncated to {at} of {pickle.Length} bytes");
                return;
            }
            case "flip-pickle":
            {
                byte[] pickle = TorchCheckpoint.StateDictPickle(tensors);
                int count = g.Int(1, 5);
                var at = new List<int>();
                for (int i = 0; i < count; i++)
                {
                    int p = g.Int(pickle.Length);
                    pickle[p] ^= (byte)g.Int(1, 256);
                    at.Add(p);
                }
                b.Marker = marker;
                Pickle(pickle, $"data.pkl: {count} byte(s) flipped at {string.Join(", ", at)}", refuse: false);
                return;
            }

            // ---- Zip level. ----
            case "no-data-pkl":
            {
                var layout = TorchCheckpoint.Write(tensors);
                b.Write(File, ReplaceAscii(layout.Bytes, "data.pkl", "data.pkx"));
                b.Refuse($"{d0}no data.pkl entry (renamed data.pkx)", "not a torch.save checkpoint");
                return;
            }
            case "two-data-pkl":
                b.Write(File, TorchCheckpoint.Write(tensors, new TorchWriteOptions { SecondPickle = true }).Bytes);
                b.Refuse($"{d0}two data.pkl entries (pytorch_model/ and other/)", "ambiguous archive");
                return;
            case "prefix-archive":
                b.Write(File, TorchCheckpoint.Write(tensors, new TorchWriteOptions { Prefix = "archive" }).Bytes);
                b.Benign($"{d0}entries under archive/ instead of pytorch_model/");
                return;
            case "prefix-empty":
                b.Write(File, TorchCheckpoint.Write(tensors, new TorchWriteOptions { Prefix = "" }).Bytes);
                b.Benign($"{d0}entries at the archive root (no folder)");
                return;
            case "deflate-pickle":
                b.Write(File, TorchCheckpoint.Write(tensors, new TorchWriteOptions { DeflatePickle = true }).Bytes);
                b.Benign($"{d0}data.pkl deflated");
                return;
            case "deflate-storage":
                b.Write(File, TorchCheckpoint.Write(tensors, new TorchWriteOptions { DeflateStorages = new HashSet<string> { victim.Key } }).Bytes);
                b.Refuse($"{d0}storage of \"{victim.Name}\" deflated", "compressed storages cannot be memory-mapped");
                return;
            case "byteorder-big" or "byteorder-middle":
            {
                string order = op == "byteorder-big" ? "big" : "middle";
                b.Write(File, TorchCheckpoint.Write(tensors, new TorchWriteOptions { ByteOrder = order }).Bytes);
                b.Refuse($"{d0}byteorder entry says \"{order}\"", "not little-endian");
                return;
            }
            case "no-byteorder":
                b.Write(File, TorchCheckpoint.Write(tensors, new TorchWriteOptions { ByteOrder = null }).Bytes);
                b.Benign($"{d0}no byteorder entry (older torch.save)");
                return;
            case "encrypted":
                b.Write(File, TorchCheckpoint.Write(tensors, new TorchWriteOptions { Encrypted = true }).Bytes);
                b.Refuse($"{d0}every entry flagged encrypted", "encrypted archive");
                return;
            case "omit-storage":
                b.Write(File, TorchCheckpoint.Write(tensors, new TorchWriteOptions { OmitStorages = new HashSet<string> { victim.Key } }).Bytes);
                b.Refuse($"{d0}storage entry of \"{victim.Name}\" missing", "a storage is missing");
                return;
            case "end-comment" or "cd-offset" or "entry-count" or "local-signature" or "central-signature" or "name-length" or "size-saturated":
            {
                var layout = TorchCheckpoint.Write(tensors);
                var bytes = (byte[])layout.Bytes.Clone();
                var s = bytes.AsSpan();
                long end = layout.EndRecord, cd = layout.CentralDirectory;
                string d;
                switch (op)
                {
                    case "end-comment": BinaryPrimitives.WriteUInt16LittleEndian(s[(int)(end + 20)..], 5); d = "end record declares a 5-byte comment that is absent"; break;
                    case "cd-offset": BinaryPrimitives.WriteUInt32LittleEndian(s[(int)(end + 16)..], 0xFFFFFF00); d = "central directory offset 0xFFFFFF00"; break;
                    case "entry-count": BinaryPrimitives.WriteUInt16LittleEndian(s[(int)(end + 10)..], 65535); d = "end record claims 65535 entries"; break;
                    case "local-signature": s[(int)layout.Entries[0].LocalHeader] ^= 0xFF; d = "data.pkl's local header signature corrupt"; break;
                    case "central-signature": s[(int)cd] ^= 0xFF; d = "first central directory header signature corrupt"; break;
                    case "name-length": BinaryPrimitives.WriteUInt16LittleEndian(s[(int)(cd + 28)..], 65535); d = "first central header's name length 65535"; break;
                    default: BinaryPrimitives.WriteUInt32LittleEndian(s[(int)(cd + 24)..], 0xFFFFFFFF); BinaryPrimitives.WriteUInt32LittleEndian(s[(int)(cd + 20)..], 0xFFFFFFFF); d = "data.pkl's sizes saturated (0xFFFFFFFF) without a zip64 extra field"; break;
                }
                b.Write(File, bytes);
                b.Refuse($"{d0}{d}", "corrupt zip structure");
                return;
            }
            case "trailing-garbage":
                b.Write(File, [.. TorchCheckpoint.Write(tensors).Bytes, .. g.Bytes(100)]);
                b.Step($"{d0}100 random bytes after the end record");
                return;
            case "leading-garbage":
                b.Write(File, [.. g.Bytes(100), .. TorchCheckpoint.Write(tensors).Bytes]);
                b.Step($"{d0}100 random bytes before the first local header");
                return;
            case "legacy":
                b.Write(File, TorchCheckpoint.StateDictPickle(tensors));
                b.Refuse($"{d0}a bare pickle (PyTorch's legacy pre-1.6 format)", "legacy format");
                return;
            case "safetensors-inside":
                b.Write(File, b.Bases.Single.Read(WeightTargets.Adapter));
                b.Refuse($"{d0}actually a safetensors file", "not a zip");
                return;
            case "tar":
            {
                var tar = new byte[1024];
                Encoding.ASCII.GetBytes("pytorch_model/data.pkl").CopyTo(tar, 0);
                Encoding.ASCII.GetBytes("ustar").CopyTo(tar, 257);
                b.Write(File, tar);
                b.Refuse($"{d0}a tar header instead of a zip", "not a zip");
                return;
            }
            case "flip-zip":
            {
                var bytes = (byte[])TorchCheckpoint.Write(tensors).Bytes.Clone();
                int count = g.Int(1, 5);
                var at = new List<int>();
                for (int i = 0; i < count; i++)
                {
                    int p = g.Int(bytes.Length);
                    bytes[p] ^= (byte)g.Int(1, 256);
                    at.Add(p);
                }
                b.Write(File, bytes);
                b.Step($"{d0}{count} byte(s) flipped at {string.Join(", ", at)}");
                return;
            }
            default:
                throw new ArgumentException(op);
        }
    }

    private static string Summary(PtTensor t) =>
        $"torch.{t.StorageType} key {t.Key} numel {t.Numel}, offset {t.Offset}, size [{string.Join(", ", t.Size)}], stride [{string.Join(", ", t.Stride)}], {t.Rebuild}{(t.Rebuild == "v3" ? " " + t.DTypeName : "")}, {t.Location}";

    private static byte[] ReplaceAscii(byte[] bytes, string from, string to)
    {
        byte[] f = Encoding.ASCII.GetBytes(from), t = Encoding.ASCII.GetBytes(to);
        var copy = (byte[])bytes.Clone();
        for (int i = 0; i + f.Length <= copy.Length; i++)
            if (copy.AsSpan(i, f.Length).SequenceEqual(f))
                t.CopyTo(copy, i);
        return copy;
    }
}
