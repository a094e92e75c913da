namespace SafeRlhf.Llama.Formats;

/// <summary>The one family of errors that readers of model, tokenizer, checkpoint and dataset files throw for input
/// that cannot be read: the message names the file and, where it applies, the line, field or tensor. Anything else
/// escaping a reader is a bug in the reader.</summary>
public abstract class InputFormatException : FormatException
{
    /// <summary>Creates the exception with a complete message (it names <paramref name="filePath"/>).</summary>
    protected InputFormatException(string filePath, string message, Exception? inner)
        : base(message, inner)
    {
        FilePath = filePath;
    }

    /// <summary>The file (or folder) being read.</summary>
    public string FilePath { get; }
}
