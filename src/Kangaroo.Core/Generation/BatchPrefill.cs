using Kangaroo.Model;

namespace Kangaroo.Generation;

/// <summary>Prompt processing of one sequence of a shared cache, in chunks of the workspace's rows.</summary>
internal static class BatchPrefill
{
    /// <summary>
    /// Runs the prompt through every layer into <paramref name="sequence"/>'s region and leaves its last token's logits in
    /// row 0 of ws.Logits. With <paramref name="atExit"/>, it sees each chunk's layer-<paramref name="exitLayer"/> states
    /// (rows of ws.Hidden; Kangaroo's adapter reads them) between the shallow and deep layers.
    /// </summary>
    public static void Run(LlamaModel model, KvCache cache, ForwardWorkspace ws, int sequence, ReadOnlySpan<int> tokens,
        int[] positions, int[] sequences, Action<int, int>? atExit, int exitLayer)
    {
        int start = 0;
        while (start < tokens.Length)
        {
            int rows = Math.Min(tokens.Length - start, ws.MaxRows);
            for (int r = 0; r < rows; r++)
            {
                positions[r] = start + r;
                sequences[r] = sequence;
            }
            model.StageBatch(ws, cache, positions.AsSpan(0, rows), sequences.AsSpan(0, rows), tokens.Slice(start, rows));
            model.EmbedStaged(ws, rows);
            if (atExit is null)
            {
                model.RunLayers(ws, cache, 0, model.Config.NumLayers, rows);
            }
            else
            {
                model.RunLayers(ws, cache, 0, exitLayer, rows);
                atExit(start, rows);
                model.RunLayers(ws, cache, exitLayer, model.Config.NumLayers, rows);
            }
            start += rows;
            if (start == tokens.Length) model.ComputeLogits(ws, rows - 1, 1);
        }
    }
}
