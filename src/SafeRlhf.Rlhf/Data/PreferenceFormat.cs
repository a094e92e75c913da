using System.Text;
using System.Text.Json;

namespace SafeRlhf.Rlhf.Data;

/// <summary>The two preference-pair formats read by the reward, cost and DPO stages.</summary>
public enum PreferenceFormat
{
    /// <summary>PKU-SafeRLHF rows: prompt, response_0/1, better/safer ids and safety labels.</summary>
    PkuSafeRlhf,

    /// <summary>HH-RLHF rows: a chosen and a rejected dialogue that share everything before their last assistant turn.</summary>
    HhRlhf,
}

/// <summary>Tells the preference formats apart by the fields of a file's first row: "chosen" and "rejected" without
/// "prompt" is HH-RLHF; anything else is read (and checked) as PKU-SafeRLHF.</summary>
public static class PreferenceFormats
{
    public static PreferenceFormat Detect(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        try
        {
            using var stream = JsonLines.OpenRead(path);
            foreach (var bytes in JsonLines.Lines(stream))
            {
                string line = Encoding.UTF8.GetString(bytes.Span);
                if (string.IsNullOrWhiteSpace(line)) continue;
                using var document = JsonDocument.Parse(line);
                var row = document.RootElement;
                if (row.ValueKind != JsonValueKind.Object) return PreferenceFormat.PkuSafeRlhf;
                bool hh = row.TryGetProperty("chosen", out _) && row.TryGetProperty("rejected", out _) && !row.TryGetProperty("prompt", out _);
                return hh ? PreferenceFormat.HhRlhf : PreferenceFormat.PkuSafeRlhf;
            }
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or DecoderFallbackException)
        {
            // The full reader reports the bad line with its file and number.
        }
        return PreferenceFormat.PkuSafeRlhf;
    }

    /// <summary>The prompt and response of an HH-RLHF pair as the chat template takes them: the dialogue before the
    /// final assistant turn without its closing "\n\nAssistant:" marker and without the "Human:" marker that opens
    /// it (earlier turns keep their "Human:"/"Assistant:" markers), and the final assistant responses, trimmed.</summary>
    public static (string Prompt, string Chosen, string Rejected) ForTemplate(HhRlhfPair pair)
    {
        ArgumentNullException.ThrowIfNull(pair);
        string prompt = pair.Prompt[..^HhRlhfReader.AssistantTag.Length].Trim();
        const string human = "Human:";
        if (prompt.StartsWith(human, StringComparison.Ordinal)) prompt = prompt[human.Length..].TrimStart();
        return (prompt, pair.Chosen.Trim(), pair.Rejected.Trim());
    }
}
