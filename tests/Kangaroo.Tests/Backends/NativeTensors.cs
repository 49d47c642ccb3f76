using System.Runtime.InteropServices;
using Kangaroo.Weights;

namespace Kangaroo.Tests.Backends;

/// <summary>
/// TensorViews over native memory owned by the test, standing in for a memory-mapped weight file (views are
/// only ever made by the weight readers, through TensorView's internal constructor). Each view starts one
/// element past a 64-byte boundary, so a backend that silently relies on vector alignment is caught.
/// </summary>
internal sealed unsafe class NativeTensors : IDisposable
{
    private readonly List<nint> _blocks = [];

    public TensorView Create(string name, DType dtype, int[] shape, ReadOnlySpan<byte> bytes)
    {
        int misalignment = dtype.SizeInBytes();
        byte* block = (byte*)NativeMemory.AlignedAlloc((nuint)(bytes.Length + misalignment), 64);
        _blocks.Add((nint)block);
        byte* data = block + misalignment;
        bytes.CopyTo(new Span<byte>(data, bytes.Length));
        return new TensorView(name, "(test memory)", dtype, shape, data, bytes.Length);
    }

    public void Dispose()
    {
        foreach (nint block in _blocks)
            NativeMemory.AlignedFree((void*)block);
        _blocks.Clear();
    }
}
