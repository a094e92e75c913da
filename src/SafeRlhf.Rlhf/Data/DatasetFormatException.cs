using SafeRlhf.Llama.Formats;

namespace SafeRlhf.Rlhf.Data;

/// <summary>A dataset file holds a row that cannot be read. The message starts with "file:line:".</summary>
public sealed class DatasetFormatException : InputFormatException
{
    /// <summary>Creates the exception; the message becomes "file:line: reason" (line 0: the file as a whole, "file: reason").</summary>
    public DatasetFormatException(string filePath, int lineNumber, string reason, Exception? inner = null)
        : base(filePath, lineNumber > 0 ? $"{filePath}:{lineNumber}: {reason}" : $"{filePath}: {reason}", inner)
    {
        LineNumber = lineNumber;
        Reason = reason;
    }

    /// <summary>1-based line of the offending row (0 when the file as a whole is concerned).</summary>
    public int LineNumber { get; }

    /// <summary>What is wrong with the row.</summary>
    public string Reason { get; }
}
