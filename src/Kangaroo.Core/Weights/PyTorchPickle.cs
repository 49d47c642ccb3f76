using System.Collections;
using System.Numerics;
using Razorvine.Pickle;
using Razorvine.Pickle.Objects;

namespace Kangaroo.Weights;

/// <summary>A storage named by a persistent id: ('storage', torch.FloatStorage, key, location, numel).</summary>
internal sealed record PyTorchStorageRef(string TypeName, string Key, long ElementCount);

/// <summary>
/// What torch._utils._rebuild_tensor_v2 (or v1/v3) was called with. <paramref name="DTypeName"/> is only set
/// by v3, which names the dtype explicitly instead of implying it by the storage type.
/// <paramref name="Sequence"/> is the order of construction, i.e. the order of the pickled dict.
/// </summary>
internal sealed record PyTorchTensorRecord(
    PyTorchStorageRef Storage, long Offset, long[] Size, long[] Stride, string? DTypeName, int Sequence);

/// <summary>A torch element type: the engine's <see cref="DType"/> where supported, and its size in bytes.</summary>
internal readonly record struct PyTorchElementType(string Name, DType? DType, int Size)
{
    private static readonly PyTorchElementType[] Known =
    [
        new("float32", Weights.DType.F32, 4), new("float16", Weights.DType.F16, 2), new("bfloat16", Weights.DType.BF16, 2),
        new("float64", null, 8), new("int64", null, 8), new("int32", null, 4), new("int16", null, 2),
        new("int8", null, 1), new("uint8", null, 1), new("bool", null, 1), new("complex64", null, 8),
        new("complex128", null, 16), new("qint8", null, 1), new("quint8", null, 1), new("qint32", null, 4),
    ];

    // torch.FloatStorage etc.: the legacy typed-storage class names torch.save still writes in persistent ids.
    private static readonly Dictionary<string, string> StorageTypes = new()
    {
        ["FloatStorage"] = "float32", ["HalfStorage"] = "float16", ["BFloat16Storage"] = "bfloat16",
        ["DoubleStorage"] = "float64", ["LongStorage"] = "int64", ["IntStorage"] = "int32",
        ["ShortStorage"] = "int16", ["CharStorage"] = "int8", ["ByteStorage"] = "uint8", ["BoolStorage"] = "bool",
        ["ComplexFloatStorage"] = "complex64", ["ComplexDoubleStorage"] = "complex128",
        ["QInt8Storage"] = "qint8", ["QUInt8Storage"] = "quint8", ["QInt32Storage"] = "qint32",
        ["UntypedStorage"] = "uint8", // untyped storages count bytes
    };

    // torch.float16 etc. as written for _rebuild_tensor_v3's dtype argument, including the aliases.
    private static readonly Dictionary<string, string> Aliases = new()
    {
        ["float"] = "float32", ["half"] = "float16", ["double"] = "float64", ["long"] = "int64", ["int"] = "int32",
        ["short"] = "int16",
    };

    public static PyTorchElementType? FromStorageType(string typeName) =>
        StorageTypes.TryGetValue(typeName, out var dtype) ? FromName(dtype) : null;

    public static PyTorchElementType? FromName(string dtypeName)
    {
        string name = Aliases.GetValueOrDefault(dtypeName, dtypeName);
        foreach (var t in Known)
            if (t.Name == name)
                return t;
        return null;
    }
}

/// <summary>
/// Unpickles torch.save's data.pkl without running any Python: the few torch globals a state dict uses are
/// mapped to records, every other global becomes Razorvine's inert ClassDictConstructor.
/// </summary>
internal sealed class PyTorchUnpickler : Unpickler
{
    // Razorvine keeps constructors in one process-wide table; these are stateless, so registering them once is safe.
    static PyTorchUnpickler()
    {
        var rebuild = new RebuildTensor();
        registerConstructor("torch._utils", "_rebuild_tensor", rebuild);
        registerConstructor("torch._utils", "_rebuild_tensor_v2", rebuild);
        registerConstructor("torch._utils", "_rebuild_tensor_v3", rebuild);
        registerConstructor("torch._utils", "_rebuild_parameter", new FirstArgument());
        registerConstructor("torch._utils", "_rebuild_parameter_with_state", new FirstArgument());
        registerConstructor("torch._tensor", "_rebuild_from_type_v2", new RebuildFromType());
        registerConstructor("collections", "OrderedDict", new OrderedDictConstructor());
    }

    // The constructors are global, so the construction counter lives per thread (an unpickle runs on one thread).
    [ThreadStatic] private static int t_sequence;

    /// <summary>Unpickles <paramref name="pickle"/>; throws whatever Razorvine or the constructors throw.</summary>
    public static object? Load(byte[] pickle)
    {
        PickleStructure.Validate(pickle);
        t_sequence = 0;
        using var unpickler = new PyTorchUnpickler();
        return unpickler.loads(pickle);
    }

    protected override object persistentLoad(object pid)
    {
        if (pid is not object[] { Length: 5 } t || t[0] is not "storage")
            throw new PickleException($"unsupported persistent id {Describe(pid)}; expected ('storage', type, key, location, numel)");
        if (t[1] is not ClassDictConstructor type || t[2] is not string key)
            throw new PickleException($"malformed storage persistent id {Describe(pid)}");
        return new PyTorchStorageRef(type.name, key, ToLong(t[4], "storage numel"));
    }

    private static long ToLong(object? value, string what) => value switch
    {
        int i => i,
        long l => l,
        BigInteger b when b >= long.MinValue && b <= long.MaxValue => (long)b,
        _ => throw new PickleException($"{what} is {Describe(value)}, expected an integer"),
    };

    private static long[] ToLongs(object? value, string what) =>
        value is object[] tuple ? Array.ConvertAll(tuple, v => ToLong(v, what)) : throw new PickleException($"{what} is {Describe(value)}, expected a tuple");

    private static string Describe(object? value) => value switch
    {
        null => "None",
        object[] tuple => $"a tuple of {tuple.Length}",
        _ => $"a {value.GetType().Name}",
    };

    private sealed class RebuildTensor : IObjectConstructor
    {
        // (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, dtype (v3 only)][, metadata]])
        public object construct(object[] args)
        {
            if (args.Length < 4 || args[0] is not PyTorchStorageRef storage)
                throw new PickleException("tensor rebuild call has unexpected arguments");
            // Only v3 passes a dtype, as a global torch.<dtype>; v2's optional 7th argument is a metadata dict.
            string? dtype = args.Length >= 7 && args[6] is ClassDictConstructor { module: "torch" } d ? d.name : null;
            return new PyTorchTensorRecord(storage, ToLong(args[1], "storage offset"), ToLongs(args[2], "size"),
                ToLongs(args[3], "stride"), dtype, t_sequence++);
        }
    }

    /// <summary>_rebuild_parameter(data, requires_grad, hooks): a Parameter is just its tensor here.</summary>
    private sealed class FirstArgument : IObjectConstructor
    {
        public object construct(object[] args) =>
            args.Length > 0 && args[0] is PyTorchTensorRecord tensor ? tensor : throw new PickleException("parameter rebuild call has unexpected arguments");
    }

    /// <summary>_rebuild_from_type_v2(func, new_type, args, state): tensor subclasses; rebuild the plain tensor.</summary>
    private sealed class RebuildFromType : IObjectConstructor
    {
        public object construct(object[] args) =>
            args.Length >= 3 && args[0] is IObjectConstructor func && args[2] is object[] inner
                ? func.construct(inner)
                : throw new PickleException("tensor subclass rebuild call has unexpected arguments");
    }

    private sealed class OrderedDictConstructor : IObjectConstructor
    {
        public object construct(object[] args) =>
            args.Length == 0 ? new PyTorchOrderedDict() : throw new PickleException("OrderedDict with constructor arguments is not supported");
    }
}

/// <summary>
/// Stands in for collections.OrderedDict: Razorvine's SETITEMS needs a Hashtable. It does not keep the order
/// (Razorvine inserts each SETITEMS batch in reverse anyway); tensors are ordered by construction instead.
/// </summary>
internal sealed class PyTorchOrderedDict : Hashtable
{
    /// <summary>BUILD passes the instance attributes (a state dict's "_metadata"): not needed for inference.</summary>
    public void __setstate__(Hashtable state) { }
}
