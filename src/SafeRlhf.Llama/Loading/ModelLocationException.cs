using SafeRlhf.Llama.Formats;

namespace SafeRlhf.Llama.Loading;

/// <summary>A <c>--model</c> path names nothing loadable: the message names the path and what was looked for.</summary>
public sealed class ModelLocationException(string path, string message, Exception? inner = null)
    : InputFormatException(path, $"{path}: {message}", inner);
