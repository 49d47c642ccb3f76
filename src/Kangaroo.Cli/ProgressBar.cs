namespace Kangaroo.Cli;

/// <summary>A one-line progress bar for model loading, drawn with carriage returns; silent for small models.</summary>
internal sealed class ProgressBar(TextWriter output, string label) : IProgress<Model.LoadProgress>
{
    private const long MinimumBytesWorthABar = 256L << 20;
    private const int Width = 30;
    private int _lastPercent = -1;
    private bool _drawn;

    public void Report(Model.LoadProgress value)
    {
        if (value.TotalBytes < MinimumBytesWorthABar) return;
        int percent = (int)(100 * value.LoadedBytes / value.TotalBytes);
        if (percent == _lastPercent) return;
        _lastPercent = percent;
        int filled = percent * Width / 100;
        output.Write($"\r{label} [{new string('#', filled)}{new string('.', Width - filled)}] {percent,3}% " +
                     $"{value.LoadedBytes / (1 << 20)}/{value.TotalBytes / (1 << 20)} MiB");
        _drawn = true;
    }

    public void Complete()
    {
        if (_drawn) output.Write("\r" + new string(' ', Width + 40) + "\r");
    }
}
