namespace SafeRlhf.Rlhf.Data;

/// <summary>The Safe-RLHF conversation template (<see cref="ChatTemplate.Default"/>). The response follows
/// "ASSISTANT:" directly, then the tokenizer's EOS.</summary>
public static class PromptTemplate
{
    public const string Prefix = "BEGINNING OF CONVERSATION: USER: ";
    public const string AssistantMarker = " ASSISTANT:";

    /// <summary>"BEGINNING OF CONVERSATION: USER: {prompt} ASSISTANT:".</summary>
    public static string Format(string prompt) => ChatTemplate.Default.Format(prompt);

    /// <summary>The formatted prompt followed by the response (without EOS, which is a token, not text).</summary>
    public static string FormatWithResponse(string prompt, string response) => ChatTemplate.Default.FormatWithResponse(prompt, response);
}
