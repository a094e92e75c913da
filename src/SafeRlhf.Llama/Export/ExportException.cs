using SafeRlhf.Llama.Formats;

namespace SafeRlhf.Llama.Export;

/// <summary>A model that cannot be exported as asked: the message names the file and the reason.</summary>
public sealed class ExportException(string path, string message, Exception? inner = null)
    : InputFormatException(path, $"{path}: {message}", inner);
