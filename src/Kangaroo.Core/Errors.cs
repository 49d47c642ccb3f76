namespace Kangaroo;

/// <summary>
/// An error the user can act on: bad input files, inconsistent configuration, invalid request parameters.
/// The message alone must say what is wrong (which file, which tensor, what was expected); the CLI prints
/// it without a stack trace and exits with code 2.
/// </summary>
public class KangarooException : Exception
{
    public KangarooException(string message) : base(message) { }
    public KangarooException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A model, adapter or tokenizer file that is missing, unreadable or malformed.</summary>
public class ModelFormatException : KangarooException
{
    public ModelFormatException(string path, string problem)
        : base($"{path}: {problem}") { Path = path; }

    public ModelFormatException(string path, string problem, Exception inner)
        : base($"{path}: {problem}", inner) { Path = path; }

    /// <summary>The file (or directory) the problem was found in.</summary>
    public string Path { get; }
}

/// <summary>A generation request that cannot be served as asked (sampling parameters, prompt too long, ...).</summary>
public class InvalidRequestException : KangarooException
{
    public InvalidRequestException(string message) : base(message) { }
}
