namespace Kangaroo.Weights;

/// <summary>
/// All weight tensors of a model directory: a single <c>model.safetensors</c> or the shards named by
/// <c>model.safetensors.index.json</c>, memory-mapped. Disposing it unmaps every file (views die with it).
/// </summary>
/// <remarks>
/// Sharded directories are checked both ways: every tensor the index names must be in the shard it names,
/// and every tensor in an opened shard must be in the index (an index that disagrees with its shards means a
/// mixed-up or partial download, so it is an error rather than something to paper over). Immutable after
/// opening, so concurrent reads are safe.
/// </remarks>
public sealed class WeightStore : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    /// <summary>The directory (or single file) the weights came from; error messages name it.</summary>
    private readonly string _location;
    private readonly SafeTensorsFile[] _files;
    private readonly string[] _filePaths;
    private readonly Dictionary<string, SafeTensorsFile> _fileByTensor;
    private readonly string[] _tensorNames;
    private string? _indexPath;

    private WeightStore(string location, SafeTensorsFile[] files, Dictionary<string, SafeTensorsFile> fileByTensor, string[] tensorNames)
    {
        _location = location;
        _files = files;
        _filePaths = Array.ConvertAll(files, file => file.Path);
        _fileByTensor = fileByTensor;
        _tensorNames = tensorNames;
    }

    /// <summary>
    /// Opens the weights of <paramref name="directory"/>: <c>model.safetensors.index.json</c> if present
    /// (every shard it names must exist and hold the tensors the index says), else <c>model.safetensors</c>.
    /// </summary>
    public static WeightStore OpenDirectory(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        directory = Path.GetFullPath(directory);
        if (!Directory.Exists(directory))
            throw new ModelFormatException(directory, File.Exists(directory) ? "is a file, expected a model directory" : "directory not found");

        string indexPath = Path.Combine(directory, IndexFileName);
        if (ModelFiles.Exists(indexPath))
            return OpenSharded(directory, indexPath);

        string singlePath = Path.Combine(directory, SingleFileName);
        if (ModelFiles.Exists(singlePath))
            return FromSingleFile(directory, SafeTensorsFile.Open(singlePath));

        throw new ModelFormatException(directory, $"no weights found: expected {IndexFileName} (sharded weights) or {SingleFileName}");
    }

    /// <summary>Opens exactly one safetensors file.</summary>
    public static WeightStore OpenFile(string path)
    {
        var file = SafeTensorsFile.Open(path);
        return FromSingleFile(file.Path, file);
    }

    private static WeightStore FromSingleFile(string location, SafeTensorsFile file)
    {
        var fileByTensor = new Dictionary<string, SafeTensorsFile>(file.TensorNames.Count, StringComparer.Ordinal);
        foreach (string name in file.TensorNames) fileByTensor.Add(name, file);
        return new WeightStore(location, [file], fileByTensor, [.. file.TensorNames]);
    }

    private static WeightStore OpenSharded(string directory, string indexPath)
    {
        var index = ShardIndex.Read(indexPath);
        var files = new List<SafeTensorsFile>();
        try
        {
            var fileByShard = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
            foreach (string shard in index.ShardsInOrder)
            {
                string shardPath = Path.Combine(directory, shard);
                if (!ModelFiles.Exists(shardPath))
                    throw new ModelFormatException(indexPath, $"shard \"{shard}\" (holding tensor \"{index.FirstTensorOf(shard)}\") does not exist in {directory}");
                var file = SafeTensorsFile.Open(shardPath);
                files.Add(file);
                fileByShard.Add(shard, file);
            }

            var fileByTensor = new Dictionary<string, SafeTensorsFile>(index.ShardByTensor.Count, StringComparer.Ordinal);
            foreach (var file in files)
            {
                foreach (string name in file.TensorNames)
                {
                    if (!fileByTensor.TryAdd(name, file))
                        throw new ModelFormatException(file.Path, $"tensor \"{name}\" is in two shards: \"{Path.GetFileName(fileByTensor[name].Path)}\" and \"{Path.GetFileName(file.Path)}\"");
                }
            }

            foreach (string name in index.TensorsInOrder)
            {
                string shard = index.ShardByTensor[name];
                if (!fileByTensor.TryGetValue(name, out var holder) || holder != fileByShard[shard])
                {
                    string actually = holder is null ? "no shard holds it" : $"it is in \"{Path.GetFileName(holder.Path)}\"";
                    throw new ModelFormatException(indexPath, $"tensor \"{name}\": the index places it in shard \"{shard}\", which does not contain it ({actually})");
                }
            }

            if (fileByTensor.Count != index.ShardByTensor.Count)
            {
                foreach (var (name, file) in fileByTensor)
                {
                    if (!index.ShardByTensor.ContainsKey(name))
                        throw new ModelFormatException(indexPath, $"tensor \"{name}\" is in shard \"{Path.GetFileName(file.Path)}\" but not in the index's weight_map");
                }
            }

            return new WeightStore(directory, [.. files], fileByTensor, [.. index.TensorsInOrder]) { _indexPath = indexPath };
        }
        catch
        {
            foreach (var file in files) file.Dispose();
            throw;
        }
    }

    public IReadOnlyCollection<string> TensorNames => _tensorNames;

    /// <summary>The files backing this store.</summary>
    public IReadOnlyList<string> Files => _filePaths;

    public bool Contains(string name) => _fileByTensor.ContainsKey(name);

    /// <summary>The tensor, or a <see cref="ModelFormatException"/> naming it and the directory.</summary>
    public TensorView Get(string name)
    {
        if (_fileByTensor.TryGetValue(name, out var file))
            return file.Get(name);
        // The file that should have held it: the single weights file, or the index that lists the shards' tensors.
        string holder = _indexPath ?? (_filePaths.Length == 1 ? _filePaths[0] : _location);
        throw new ModelFormatException(holder, $"no tensor named \"{name}\" among the {_tensorNames.Length} tensors of the weights{NameSuggestions.DidYouMean(name, _tensorNames)}");
    }

    /// <summary>
    /// The tensor, checked against the expected shape: a mismatch is a <see cref="ModelFormatException"/>
    /// whose message names the tensor, the expected shape and the actual shape.
    /// </summary>
    public TensorView Get(string name, params int[] expectedShape)
    {
        var view = Get(name);
        var shape = view.Shape;
        bool matches = shape.Count == expectedShape.Length;
        for (int i = 0; matches && i < expectedShape.Length; i++) matches = shape[i] == expectedShape[i];
        if (!matches)
            throw new ModelFormatException(view.FilePath, $"{name} has shape {SafeTensorsHeader.FormatShape(shape)}, expected {SafeTensorsHeader.FormatShape(expectedShape)}");
        return view;
    }

    public void Dispose()
    {
        foreach (var file in _files) file.Dispose();
    }
}
