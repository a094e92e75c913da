using System.Text.RegularExpressions;

namespace SafeRlhf.Rlhf.Data;

/// <summary>How a user prompt is wrapped before the model answers: a text with exactly one <c>{prompt}</c>
/// placeholder. The response follows the wrapped prompt directly, then the tokenizer's EOS. Every stage that
/// tokenizes prompts (sft, reward, cost, dpo, the RL stages, eval, arena) and `generate --chat` use this one
/// definition; the default is the Safe-RLHF template <see cref="DefaultText"/>.</summary>
public sealed partial class ChatTemplate
{
    /// <summary>The placeholder the prompt replaces.</summary>
    public const string Placeholder = "{prompt}";

    /// <summary>The Safe-RLHF conversation template.</summary>
    public const string DefaultText = "BEGINNING OF CONVERSATION: USER: {prompt} ASSISTANT:";

    /// <summary>The Safe-RLHF template.</summary>
    public static ChatTemplate Default { get; } = new(DefaultText);

    private readonly string _prefix;
    private readonly string _suffix;

    private ChatTemplate(string text)
    {
        Text = text;
        int at = text.IndexOf(Placeholder, StringComparison.Ordinal);
        _prefix = text[..at];
        _suffix = text[(at + Placeholder.Length)..];
    }

    /// <summary>The template as configured, with its placeholder.</summary>
    public string Text { get; }

    /// <summary>Checks <paramref name="text"/>: exactly one {prompt} and no other {name} placeholder. Throws an
    /// <see cref="ArgumentException"/> whose message says what is wrong (the caller names the key or option).</summary>
    public static ChatTemplate Parse(string? text)
    {
        if (text is null) throw new ArgumentException($"a chat template is required (e.g. \"{DefaultText}\")");
        if (text == DefaultText) return Default;
        int count = Regex.Count(text, Regex.Escape(Placeholder));
        if (count != 1)
            throw new ArgumentException($"chat template \"{text}\" must hold the placeholder {Placeholder} exactly once, it holds it {count} times " +
                                        $"(e.g. \"{DefaultText}\")");
        foreach (Match m in OtherPlaceholder().Matches(text))
            if (m.Value != Placeholder)
                throw new ArgumentException($"chat template \"{text}\": unknown placeholder {m.Value} (only {Placeholder} is replaced)");
        return new ChatTemplate(text);
    }

    /// <summary>The wrapped prompt, e.g. "BEGINNING OF CONVERSATION: USER: {prompt} ASSISTANT:".</summary>
    public string Format(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        return _prefix + prompt + _suffix;
    }

    /// <summary>The wrapped prompt followed by the response (without EOS, which is a token, not text).</summary>
    public string FormatWithResponse(string prompt, string response)
    {
        ArgumentNullException.ThrowIfNull(response);
        return Format(prompt) + response;
    }

    public override string ToString() => Text;

    [GeneratedRegex(@"\{[A-Za-z_][A-Za-z0-9_]*\}")]
    private static partial Regex OtherPlaceholder();
}
