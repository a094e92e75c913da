using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace SafeRlhf.Cli;

/// <summary>Effective configuration = defaults, then a JSON file (--config), then --set key=value overrides
/// (dotted snake_case keys, e.g. rl.actor_lr=2e-4). Unknown keys are rejected with the list of valid ones.</summary>
public static class ConfigLoader
{
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>Effective configuration: <paramref name="defaults"/>, then <paramref name="file"/>, then the --set
    /// overrides. Anything wrong throws <see cref="CliException"/> naming the file or option and the key.</summary>
    public static T Load<T>(T defaults, string? file, IEnumerable<string> sets)
    {
        try
        {
            return LoadUnchecked(defaults, file, sets);
        }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or ArgumentException)
        {
            // Syntactically valid JSON that System.Text.Json cannot turn into strings (a lone surrogate escape) or values,
            // or an object that repeats a key.
            throw new CliException($"{(file is null ? "--set" : $"--config: {file}")}: a key or value cannot be read ({e.Message})");
        }
    }

    /// <summary>The text of a file that must be UTF-8; invalid bytes throw <see cref="DecoderFallbackException"/>.</summary>
    public static string ReadUtf8(string path) => StrictUtf8.GetString(File.ReadAllBytes(path));

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static T LoadUnchecked<T>(T defaults, string? file, IEnumerable<string> sets)
    {
        var root = JsonSerializer.SerializeToNode(defaults, Json)!.AsObject();
        if (file is not null)
        {
            if (!File.Exists(file)) throw new CliException($"--config: file not found: {file}");
            JsonNode? overrides;
            try { overrides = JsonNode.Parse(ReadUtf8(file)); }
            catch (JsonException ex) { throw new CliException($"--config: {file} is not valid JSON (line {ex.LineNumber + 1}): {ex.Message}"); }
            catch (DecoderFallbackException) { throw new CliException($"--config: {file} is not valid UTF-8 text"); }
            if (overrides is not JsonObject obj) throw new CliException($"--config: {file} must hold a JSON object");
            Merge(root, obj, "", file);
        }
        foreach (var set in sets)
        {
            int eq = set.IndexOf('=');
            if (eq <= 0) throw new CliException($"--set: expected key=value, got '{set}'");
            var path = set[..eq].Trim().Split('.');
            string text = set[(eq + 1)..].Trim();
            var parent = root;
            for (int i = 0; i < path.Length - 1; i++)
                parent = parent[path[i]] as JsonObject ?? throw Unknown(string.Join('.', path[..(i + 1)]), parent, "--set");
            if (!parent.ContainsKey(path[^1])) throw Unknown(set[..eq].Trim(), parent, "--set");
            parent[path[^1]] = ParseValue(text);
        }
        try
        {
            return root.Deserialize<T>(Json) ?? throw new CliException("configuration is empty");
        }
        catch (JsonException ex)
        {
            throw new CliException($"invalid configuration value at '{ex.Path?.TrimStart('$', '.')}': {ex.Message}");
        }
    }

    public static string Describe<T>(T config) => JsonSerializer.Serialize(config, Json);

    private static JsonNode? ParseValue(string text)
    {
        try { return JsonNode.Parse(text); }
        catch (JsonException) { return JsonValue.Create(text); }
    }

    private static void Merge(JsonObject target, JsonObject source, string prefix, string file)
    {
        foreach (var (key, value) in source)
        {
            if (!target.ContainsKey(key)) throw Unknown(prefix + key, target, file);
            if (target[key] is JsonObject inner && value is JsonObject innerSource) Merge(inner, innerSource, prefix + key + ".", file);
            else target[key] = value?.DeepClone();
        }
    }

    private static CliException Unknown(string key, JsonObject scope, string where) =>
        new($"{where}: unknown config key '{key}' (valid here: {string.Join(", ", scope.Select(p => p.Key))})");
}
