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

/// <summary>
/// A forward pass produced NaN or infinite logits. With finite weights the cause is the configuration (rotary values,
/// norm epsilon) or an activation overflow; where a weight tensor holds non-finite values, the message names it.
/// The generation ends with this error instead of emitting tokens chosen from meaningless numbers.
/// </summary>
public class NonFiniteLogitsException : KangarooException
{
    public NonFiniteLogitsException(string message) : base(message) { }
    public NonFiniteLogitsException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Whether the weights were searched for the cause and the message says what was found.</summary>
    public bool Diagnosed { get; init; }
}
