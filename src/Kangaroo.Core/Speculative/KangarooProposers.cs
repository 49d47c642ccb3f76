using Kangaroo.Model;

namespace Kangaroo.Speculative;

/// <summary>Kangaroo's proposer for a set of options: the token tree when <see cref="KangarooOptions.Tree"/> is set, else the chain.</summary>
internal static class KangarooProposers
{
    public static IDraftProposer Create(LlamaModel model, KangarooAdapter adapter, KangarooOptions options, int maxSequences, int contextLength,
        int prefillChunk) =>
        options.Tree is null
            ? new KangarooChainProposer(model, adapter, options, maxSequences, contextLength, prefillChunk)
            : new KangarooTreeProposer(model, adapter, options, maxSequences, contextLength, prefillChunk);
}
