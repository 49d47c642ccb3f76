using System.Buffers.Binary;
using Razorvine.Pickle;

namespace Kangaroo.Weights;

/// <summary>
/// Walks a pickle's opcodes (protocols 0–5) without executing any, before it is unpickled, and refuses what Python's own
/// unpickler would refuse but Razorvine tolerates: an opcode Python does not know, an argument or a frame that runs past
/// the end of the data, and a stream without STOP. Razorvine skips frame headers, so a frame larger than the data left
/// would otherwise be accepted silently where torch.load fails.
/// </summary>
internal static class PickleStructure
{
    private enum Argument { None, Fixed, CountedByte, CountedInt32, CountedInt64, Line, TwoLines, Frame }

    private static readonly (Argument Kind, int Size)[] Opcodes = Table();

    public static void Validate(ReadOnlySpan<byte> pickle)
    {
        long frameEnd = -1;
        int at = 0;
        while (at < pickle.Length)
        {
            int opcodeAt = at;
            byte opcode = pickle[at++];
            if (opcode == (byte)'.') return;
            var (kind, size) = Opcodes[opcode];
            switch (kind)
            {
                case Argument.None when size < 0:
                    throw new PickleException($"unknown pickle opcode 0x{opcode:x2} at byte {opcodeAt}");
                case Argument.None:
                    break;
                case Argument.Fixed:
                    at = Skip(pickle, at, size, opcode, opcodeAt);
                    break;
                case Argument.CountedByte:
                    Need(pickle, at, 1, opcode, opcodeAt);
                    at = Skip(pickle, at + 1, pickle[at], opcode, opcodeAt);
                    break;
                case Argument.CountedInt32:
                    Need(pickle, at, 4, opcode, opcodeAt);
                    int count32 = BinaryPrimitives.ReadInt32LittleEndian(pickle[at..]);
                    if (count32 < 0) throw new PickleException($"negative length {count32} at byte {opcodeAt}");
                    at = Skip(pickle, at + 4, count32, opcode, opcodeAt);
                    break;
                case Argument.CountedInt64:
                case Argument.Frame:
                    Need(pickle, at, 8, opcode, opcodeAt);
                    ulong count64 = BinaryPrimitives.ReadUInt64LittleEndian(pickle[at..]);
                    at += 8;
                    if (count64 > (ulong)(pickle.Length - at))
                        throw new PickleException($"{(kind == Argument.Frame ? "frame" : "argument")} of {count64} bytes at byte {opcodeAt} runs past the end of the pickle ({pickle.Length - at} bytes left)");
                    if (kind == Argument.Frame)
                    {
                        if (frameEnd > opcodeAt) throw new PickleException($"frame at byte {opcodeAt} starts inside the previous frame");
                        frameEnd = at + (long)count64;
                    }
                    else at += (int)count64;
                    break;
                case Argument.Line:
                    at = SkipLine(pickle, at, opcode, opcodeAt);
                    break;
                case Argument.TwoLines:
                    at = SkipLine(pickle, SkipLine(pickle, at, opcode, opcodeAt), opcode, opcodeAt);
                    break;
            }
        }
        throw new PickleException("the pickle ends without a STOP opcode (truncated?)");
    }

    private static void Need(ReadOnlySpan<byte> pickle, int at, int bytes, byte opcode, int opcodeAt)
    {
        if (bytes > pickle.Length - at)
            throw new PickleException($"opcode 0x{opcode:x2} at byte {opcodeAt} needs {bytes} more bytes than the pickle holds");
    }

    private static int Skip(ReadOnlySpan<byte> pickle, int at, int bytes, byte opcode, int opcodeAt)
    {
        Need(pickle, at, bytes, opcode, opcodeAt);
        return at + bytes;
    }

    private static int SkipLine(ReadOnlySpan<byte> pickle, int at, byte opcode, int opcodeAt)
    {
        int newline = pickle[at..].IndexOf((byte)'\n');
        if (newline < 0) throw new PickleException($"opcode 0x{opcode:x2} at byte {opcodeAt} has no end of line");
        return at + newline + 1;
    }

    private static (Argument, int)[] Table()
    {
        var table = new (Argument, int)[256];
        Array.Fill(table, (Argument.None, -1));
        void Set(string opcodes, Argument kind, int size = 0)
        {
            foreach (char c in opcodes) table[c] = (kind, size);
        }
        // As in CPython's pickletools: opcodes without an argument.
        Set("(.012NRbd}ea l]ost)uQ\u0085\u0086\u0087\u0081\u0092\u0093\u0094\u008f\u0090\u0091\u0097\u0098\u0088\u0089".Replace(" ", ""), Argument.None);
        Set("Khq\u0080\u0082", Argument.Fixed, 1);
        Set("M\u0083", Argument.Fixed, 2);
        Set("Jjr\u0084", Argument.Fixed, 4);
        Set("G", Argument.Fixed, 8);
        Set("CU\u008c\u008a", Argument.CountedByte);
        Set("TXB\u008b", Argument.CountedInt32);
        Set("\u008d\u008e\u0096", Argument.CountedInt64);
        Set("\u0095", Argument.Frame);
        Set("ILSVFgpP", Argument.Line);
        Set("ci", Argument.TwoLines);
        return table;
    }
}
