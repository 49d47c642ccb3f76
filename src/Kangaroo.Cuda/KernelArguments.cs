using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Kangaroo.Cuda;

/// <summary>
/// Kernel arguments packed on the caller's stack, one 8-byte slot per argument, for
/// <see cref="CudaFunction.Launch(CudaStream, Dim3, Dim3, int, in KernelArguments)"/>. cuLaunchKernel wants an
/// array of pointers, each at one argument's value, and copies each value by the size the kernel declares, so a
/// little-endian value at the start of an 8-byte slot serves every scalar parameter type up to 8 bytes.
/// </summary>
/// <remarks>
/// A ref struct so that it can only live on the stack: the pointers handed to the driver point into it, and
/// stack memory is the one place the GC never moves. Nothing here allocates.
/// <code>
/// var args = new KernelArguments();
/// args.Add(output); args.Add(input); args.Add(n); args.Add(1e-5f);
/// function.Launch(stream, grid, block, 0, in args);
/// </code>
/// </remarks>
public ref struct KernelArguments
{
    /// <summary>More than any kernel in this engine takes; the driver's own limit is 32 KiB of parameters.</summary>
    public const int MaxArguments = 32;

    private Slots _slots;
    private int _count;

    [InlineArray(MaxArguments)]
    private struct Slots
    {
        private ulong _element;
    }

    /// <summary>Arguments added so far.</summary>
    public readonly int Count => _count;

    /// <summary>A device buffer (a <c>T*</c> parameter), optionally at a byte offset into it.</summary>
    public void Add(DeviceBuffer buffer, long byteOffset = 0)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        if ((ulong)byteOffset > (ulong)buffer.ByteLength)
            throw new ArgumentOutOfRangeException(nameof(byteOffset), $"offset {byteOffset} lies outside the {buffer.ByteLength}-byte device buffer");
        Push(buffer.DevicePointer + (ulong)byteOffset);
    }

    /// <summary>A 64-bit value (<c>unsigned long long</c>, <c>size_t</c>, or a raw device address a friend assembly holds).</summary>
    public void Add(ulong value) => Push(value);

    public void Add(long value) => Push((ulong)value);

    public void Add(int value) => Push((uint)value);

    public void Add(uint value) => Push(value);

    public void Add(float value) => Push(BitConverter.SingleToUInt32Bits(value));

    public void Add(double value) => Push(BitConverter.DoubleToUInt64Bits(value));

    /// <summary>A <c>__half</c> parameter.</summary>
    public void Add(Half value) => Push(BitConverter.HalfToUInt16Bits(value));

    private void Push(ulong bits)
    {
        if (_count == MaxArguments)
            ThrowFull();
        _slots[_count++] = bits;
    }

    private static void ThrowFull() => throw new InvalidOperationException($"a kernel launch takes at most {MaxArguments} arguments here");

    /// <summary>The packed slot values (for tests and diagnostics).</summary>
    [UnscopedRef]
    internal readonly ReadOnlySpan<ulong> Values => ((ReadOnlySpan<ulong>)_slots)[.._count];

    /// <summary>Writes, for each argument, the address of its slot. Valid while this struct's stack frame lives.</summary>
    internal readonly unsafe void WritePointers(Span<nint> pointers)
    {
        for (int i = 0; i < _count; i++)
            pointers[i] = (nint)Unsafe.AsPointer(ref Unsafe.AsRef(in _slots[i]));
    }
}
