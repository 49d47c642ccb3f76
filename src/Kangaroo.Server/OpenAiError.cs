using System.Text.Json;

namespace Kangaroo.Server;

/// <summary>
/// A request the server answers with an OpenAI-style error body, <c>{"error": {"message", "type", "param", "code"}}</c>,
/// and <see cref="Status"/>. Thrown while a request is read or checked; the server itself stays up.
/// </summary>
public sealed class OpenAiError : Exception
{
    public OpenAiError(int status, string type, string message, string? param = null, string? code = null) : base(message)
    {
        Status = status;
        Type = type;
        Param = param;
        Code = code;
    }

    public int Status { get; }
    public string Type { get; }
    public string? Param { get; }
    public string? Code { get; }

    /// <summary>Extra response headers (Retry-After on overload).</summary>
    public TimeSpan? RetryAfter { get; init; }

    public static OpenAiError Invalid(string message, string? param = null, string? code = null) =>
        new(StatusCodes.Status400BadRequest, "invalid_request_error", message, param, code);

    public static OpenAiError Unsupported(string param, string message) =>
        new(StatusCodes.Status400BadRequest, "invalid_request_error", message, param, "unsupported_parameter");

    public static OpenAiError ModelNotFound(string model) =>
        new(StatusCodes.Status404NotFound, "invalid_request_error", $"The model '{model}' does not exist", "model", "model_not_found");

    public static OpenAiError ServerError(string message) =>
        new(StatusCodes.Status500InternalServerError, "server_error", message);

    public void WriteTo(Utf8JsonWriter json)
    {
        json.WriteStartObject();
        json.WriteStartObject("error");
        json.WriteString("message", Message);
        json.WriteString("type", Type);
        if (Param is null) json.WriteNull("param"); else json.WriteString("param", Param);
        if (Code is null) json.WriteNull("code"); else json.WriteString("code", Code);
        json.WriteEndObject();
        json.WriteEndObject();
    }
}
