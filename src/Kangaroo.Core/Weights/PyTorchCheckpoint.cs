namespace Kangaroo.Weights;

/// <summary>A PyTorch <c>pytorch_model.bin</c> (zip + pickle) state dict. Stub until the reader lands.</summary>
public sealed class PyTorchCheckpoint : IDisposable
{
    private PyTorchCheckpoint() { }

    public static PyTorchCheckpoint Open(string path) =>
        throw new ModelFormatException(path, "pytorch_model.bin checkpoints are not supported yet");

    public TensorView Get(string name, params int[] expectedShape) => throw new NotSupportedException();

    public void Dispose() { }
}
