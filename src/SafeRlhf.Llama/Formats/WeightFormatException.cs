namespace SafeRlhf.Llama.Formats;

/// <summary>A weight file is truncated, corrupt or of an unsupported kind. The message names the file and,
/// where one is concerned, the tensor (or metadata key).</summary>
public sealed class WeightFormatException : InputFormatException
{
    /// <summary>Creates the exception; the message becomes "<paramref name="path"/>: tensor 'name': message".</summary>
    public WeightFormatException(string path, string? tensor, string message, Exception? inner = null)
        : base(path, Compose(path, tensor, message), inner)
    {
        TensorName = tensor;
    }

    /// <summary>The tensor or metadata key concerned, when there is one.</summary>
    public string? TensorName { get; }

    private static string Compose(string path, string? tensor, string message) =>
        tensor is null ? $"{path}: {message}" : $"{path}: tensor '{tensor}': {message}";
}
