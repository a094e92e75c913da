using Spectre.Console;

namespace SafeRlhf.Cli;

/// <summary>Spectre consoles that wrap only on a terminal: when standard output is redirected (a file, a pipe, a log
/// collector) lines are written whole, as wide as they are, instead of wrapped at Spectre's default 80 columns.</summary>
public static class CliConsole
{
    /// <summary>The width given to a redirected console: wider than any line the commands write.</summary>
    public const int RedirectedWidth = 4096;

    /// <summary>A console on <paramref name="output"/>, by default the current Console.Out (which may have been
    /// redirected since start-up); a writer other than standard output, or a redirected one, never wraps.</summary>
    public static IAnsiConsole Create(TextWriter? output = null)
    {
        output ??= Console.Out;
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
        if (Console.IsOutputRedirected || output != Console.Out) console.Profile.Width = RedirectedWidth;
        return console;
    }

    /// <summary>Sets the shared <see cref="AnsiConsole"/>'s width for redirected output (called once at start).</summary>
    public static void ConfigureShared()
    {
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = RedirectedWidth;
    }
}
