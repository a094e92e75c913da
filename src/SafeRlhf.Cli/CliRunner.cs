using System.CommandLine;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;

namespace SafeRlhf.Cli;

/// <summary>The driver's one error boundary: every failure becomes one line on stderr, "error: …", and an exit code:
/// <see cref="BadInput"/> for input that cannot be used (the message names the file, line, field, tensor or option),
/// <see cref="InternalError"/> for an unexpected exception (a bug: the line says so and asks for --verbose), and
/// <see cref="Interrupted"/> for Ctrl-C. The stack trace is printed only under --verbose.</summary>
public static class CliRunner
{
    /// <summary>Exit code for a bad command line, config, model, tokenizer, checkpoint or dataset.</summary>
    public const int BadInput = 1;

    /// <summary>Exit code for an unexpected exception (a bug in the driver or a library).</summary>
    public const int InternalError = 70;

    /// <summary>Exit code after Ctrl-C (SIGINT).</summary>
    public const int Interrupted = 130;

    /// <summary>The recursive --verbose option (stack traces on errors).</summary>
    public static readonly Option<bool> VerboseOption = CommonOptions.Verbose();

    /// <summary>Runs a command body and reports whatever it throws through <see cref="Report"/>.</summary>
    public static int Run(ParseResult parse, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception ex)
        {
            return Report(ex, parse.GetValue(VerboseOption), parse.CommandResult.Command.Name);
        }
    }

    /// <summary>Writes the one-line report of <paramref name="ex"/> (and the full exception under
    /// <paramref name="verbose"/>) to stderr and returns the exit code.</summary>
    public static int Report(Exception ex, bool verbose, string command)
    {
        int code;
        string line;
        if (ex is OperationCanceledException)
        {
            code = Interrupted;
            line = "interrupted";
        }
        else if (IsBadInput(ex))
        {
            code = BadInput;
            line = $"error: {OneLine(ex.Message)}";
        }
        else
        {
            code = InternalError;
            line = $"error: internal error in '{command}': {ex.GetType().Name}: {OneLine(ex.Message)} " +
                   "(this is a bug; rerun with --verbose for the stack trace and report it)";
        }
        Console.Error.WriteLine(line);
        if (verbose) Console.Error.WriteLine(ex);
        return code;
    }

    /// <summary>Failures caused by what the user gave the driver (files, options, configs) or by the machine
    /// (missing files, permissions, a missing device), as opposed to bugs.</summary>
    private static bool IsBadInput(Exception ex) => ex is CliException or InputFormatException or FileNotFoundException
        or DirectoryNotFoundException or UnauthorizedAccessException or IOException or NonFiniteLossException
        or TensorShapeException or TensorDTypeException or BackendException or InvalidDataException or NotSupportedException
        or KeyNotFoundException or ArgumentException or SafeRlhf.Tensors.Distributed.CommunicatorException;

    private static string OneLine(string message) =>
        string.Join(' ', message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
