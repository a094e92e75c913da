using SafeRlhf.Llama.Loading;
using SafeRlhf.Rlhf.Data;

namespace SafeRlhf.Cli;

/// <summary>Chat templates as the driver reads them: from a config key, an option or a model's run, checked with
/// one <see cref="CliException"/> naming where the template came from.</summary>
public static class ChatTemplates
{
    /// <summary>Help text shared by every command that wraps prompts.</summary>
    public const string Help = "Prompts are wrapped in the chat template 'chat_template' (default \"" + ChatTemplate.DefaultText +
                               "\"; the response follows it, then EOS), saved in the run's config.json and each checkpoint";

    /// <summary>The template <paramref name="text"/>; a bad one throws naming <paramref name="source"/> (a key or option).</summary>
    public static ChatTemplate Parse(string? text, string source)
    {
        try
        {
            return ChatTemplate.Parse(text);
        }
        catch (ArgumentException e)
        {
            throw new CliException($"{source}: {e.Message}");
        }
    }

    /// <summary>The template for a model: <paramref name="explicitText"/> when given, else the one its checkpoint or run
    /// states, else the default.</summary>
    public static ChatTemplate For(ModelLocation location, string? explicitText, string option) =>
        explicitText is not null ? Parse(explicitText, option)
        : location.ChatTemplate is { } saved ? Parse(saved, $"chat template saved with {location.Requested}")
        : ChatTemplate.Default;
}
