using System.Text.Json;
using System.Text.Json.Serialization;

namespace SafeRlhf.Cli;

/// <summary>A run's folder: effective config, metrics as JSON lines (one object per step), results, plots. In a
/// data-parallel job every rank opens the same folder (rank 0 names a default one) and only rank 0 writes to it.</summary>
public sealed class RunFolder
{
    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    private static readonly JsonSerializerOptions JsonLine = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    private RunFolder(string path) => Path = path;

    public string Path { get; }
    public string MetricsPath => System.IO.Path.Combine(Path, "metrics.jsonl");

    /// <summary>False on the ranks of a data-parallel job other than rank 0: they read the folder but never write it.</summary>
    public bool Writes { get; } = Distributed.ProcessRanks.IsWriter;

    public static RunFolder Create(string? path, string kind)
    {
        path ??= DefaultPath(kind);
        if (Distributed.ProcessRanks.IsWriter) Directory.CreateDirectory(path);
        return new RunFolder(System.IO.Path.GetFullPath(path));
    }

    /// <summary>runs/&lt;kind&gt;-&lt;time&gt;, with rank 0's time on every rank of a job.</summary>
    private static string DefaultPath(string kind)
    {
        var name = System.Text.Encoding.UTF8.GetBytes($"{kind}-{DateTime.Now:yyyyMMdd-HHmmss}");
        if (Distributed.ProcessRanks.Comm.WorldSize > 1) Distributed.ProcessRanks.Comm.Broadcast<byte>(name, 0);
        return System.IO.Path.Combine("runs", System.Text.Encoding.UTF8.GetString(name));
    }

    public void SaveConfig<T>(T config)
    {
        if (!Writes) return;
        var target = System.IO.Path.Combine(Path, "config.json");
        File.WriteAllText(target + ".tmp", ConfigLoader.Describe(config));
        File.Move(target + ".tmp", target, overwrite: true);
    }

    /// <summary>Writes a JSON file atomically (temp file + rename).</summary>
    public void WriteJson<T>(string name, T value)
    {
        if (!Writes) return;
        var target = System.IO.Path.Combine(Path, name);
        var temp = target + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(value, Json));
        File.Move(temp, target, overwrite: true);
    }

    public void AppendMetrics(Rlhf.Training.StepMetrics m)
    {
        if (!Writes) return;
        var line = new Dictionary<string, object> { ["stage"] = m.Stage, ["step"] = m.Step };
        foreach (var (k, v) in m.Values) line[k] = v;
        File.AppendAllText(MetricsPath, JsonSerializer.Serialize(line, JsonLine) + "\n");
    }
}
