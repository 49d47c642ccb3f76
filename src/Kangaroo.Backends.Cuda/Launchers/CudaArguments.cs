namespace Kangaroo.Backends.Cuda.Launchers;

/// <summary>Argument checks the CUDA launchers share.</summary>
internal static class CudaArguments
{
    public static void CheckRows(int rows, int available, string name)
    {
        if (rows < 0 || rows > available) throw new ArgumentOutOfRangeException(name, rows, $"{rows} rows, {available} available");
    }
}
