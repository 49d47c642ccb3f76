namespace Kangaroo.Chat;

/// <summary>
/// A chat template that cannot be parsed (the message names the line and column and what was expected there), or one
/// that failed while rendering: an undefined value used in arithmetic, an unknown filter, or the template's own
/// <c>raise_exception('...')</c>, whose text is the message (as transformers surfaces it to the user).
/// </summary>
public class ChatTemplateException : KangarooException
{
    public ChatTemplateException(string message, int line = 0, int column = 0) : base(message)
    {
        Line = line;
        Column = column;
    }

    /// <summary>The 1-based line in the template the problem was found at, or 0 when it has no place there.</summary>
    public int Line { get; }

    /// <summary>The 1-based column in the template the problem was found at, or 0 when it has no place there.</summary>
    public int Column { get; }

    /// <summary>Whether the template itself called <c>raise_exception</c> (then the message is exactly its argument).</summary>
    public bool RaisedByTemplate { get; init; }
}
