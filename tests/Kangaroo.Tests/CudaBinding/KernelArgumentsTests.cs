using Kangaroo.Cuda;
using Xunit;

namespace Kangaroo.Tests.CudaBinding;

public sealed class KernelArgumentsTests
{
    [Fact]
    public void Values_are_packed_one_little_endian_slot_each()
    {
        var args = new KernelArguments();
        args.Add(42);
        args.Add(-1);
        args.Add(1.5f);
        args.Add(0x1122334455667788UL);
        args.Add(-2L);
        args.Add((Half)1.0f);
        args.Add(2.0);
        args.Add(7u);

        Assert.Equal(8, args.Count);
        Assert.Equal(
            [
                42UL,
                0xFFFFFFFFUL, // an int occupies the low 4 bytes; the kernel reads only those
                BitConverter.SingleToUInt32Bits(1.5f),
                0x1122334455667788UL,
                unchecked((ulong)-2L),
                BitConverter.HalfToUInt16Bits((Half)1.0f),
                BitConverter.DoubleToUInt64Bits(2.0),
                7UL,
            ],
            args.Values.ToArray());
    }

    [Fact]
    public unsafe void Pointers_address_each_value_at_its_declared_size()
    {
        var args = new KernelArguments();
        args.Add(-7);
        args.Add(3.25f);
        args.Add(0xDEADBEEFCAFEUL);
        args.Add((Half)(-0.5f));

        Span<nint> pointers = stackalloc nint[KernelArguments.MaxArguments];
        args.WritePointers(pointers);

        Assert.Equal(-7, *(int*)pointers[0]);
        Assert.Equal(3.25f, *(float*)pointers[1]);
        Assert.Equal(0xDEADBEEFCAFEUL, *(ulong*)pointers[2]);
        Assert.Equal((Half)(-0.5f), *(Half*)pointers[3]);
        // Slots are 8 bytes apart and 8-byte aligned, whatever each value's size.
        Assert.Equal(8, pointers[1] - pointers[0]);
        Assert.Equal(0, pointers[0] % 8);
    }

    [Fact]
    public void Too_many_arguments_throw()
    {
        Assert.Throws<InvalidOperationException>(() =>
        {
            var args = new KernelArguments();
            for (int i = 0; i <= KernelArguments.MaxArguments; i++)
                args.Add(i);
        });
    }

    [Fact]
    public void Dim3_defaults_and_formats()
    {
        Dim3 grid = 128u;
        Assert.Equal(new Dim3(128, 1, 1), grid);
        Assert.Equal("(4, 2, 1)", new Dim3(4, 2).ToString());
        Assert.Equal(8UL, new Dim3(4, 2).Volume);
    }
}
