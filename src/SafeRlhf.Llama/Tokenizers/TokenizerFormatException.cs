using SafeRlhf.Llama.Formats;

namespace SafeRlhf.Llama.Tokenizers;

/// <summary>A tokenizer file (SentencePiece .model, llama2.c tokenizer.bin, or a GGUF vocabulary) cannot be used.
/// The message is "file: field: reason" (the field where one is concerned).</summary>
public sealed class TokenizerFormatException : InputFormatException
{
    /// <summary>Creates the exception for <paramref name="path"/>, naming <paramref name="field"/> when given.</summary>
    public TokenizerFormatException(string path, string? field, string message, Exception? inner = null)
        : base(path, field is null ? $"{path}: {message}" : $"{path}: {field}: {message}", inner)
    {
        Field = field;
    }

    /// <summary>The field (or token) concerned, when there is one.</summary>
    public string? Field { get; }
}
