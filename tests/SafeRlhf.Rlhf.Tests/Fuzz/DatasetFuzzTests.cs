using System.IO.Compression;
using System.Text.Json;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Rlhf.Data;
using SafeRlhf.TestSupport;
using SafeRlhf.TestSupport.Fuzz;
using Xunit.Abstractions;

namespace SafeRlhf.Rlhf.Tests.Fuzz;

/// <summary>The dataset readers under seeded structure-aware mutation of real rows (PKU-SafeRLHF and HH-RLHF from the
/// shared assets; Alpaca rows built from the PKU-SafeRLHF prompts): each input must be read or refused with a
/// <see cref="DatasetFormatException"/> within the time limit and the allocation bound. One line per reader in
/// <see cref="All"/>.</summary>
public sealed class DatasetFuzzTests(ITestOutputHelper output)
{
    private static bool Typed(Exception e) => e is InputFormatException;

    private static FuzzTarget Target(string name, FuzzInputKind kind, Func<string> seed, string fileName, Action<string> read) =>
        new(name, kind, seed, fileName, read, Typed);

    /// <summary>The readers under fuzzing, one line each.</summary>
    public static readonly IReadOnlyList<FuzzTarget> All =
    [
        Target("pku-saferlhf", FuzzInputKind.JsonLines, () => Assets.Require("data/pku-saferlhf-alpaca7b-test-head150.jsonl"), "pku.jsonl",
            p => PkuSafeRlhfReader.Read(p)) with { DefaultInputs = 500 },
        Target("pku-saferlhf-skip", FuzzInputKind.JsonLines, () => Assets.Require("data/pku-saferlhf-alpaca7b-test-head150.jsonl"), "pku.jsonl",
            p => PkuSafeRlhfReader.Read(p, skipMalformed: true)) with { DefaultInputs = 200 },
        Target("hh-rlhf-gzip", FuzzInputKind.GzipJsonLines, () => Seeds.HhHead, "hh.jsonl.gz", p => HhRlhfReader.Read(p)),
        Target("alpaca", FuzzInputKind.JsonLines, () => Seeds.Alpaca, "alpaca.jsonl", p => AlpacaReader.Read(p)),
    ];

    /// <summary>xUnit cases: the target names.</summary>
    public static TheoryData<string> Targets => new(All.Select(t => t.Name));

    [Theory]
    [MemberData(nameof(Targets))]
    public void ReaderSurvivesMutatedInputs(string name)
    {
        FuzzRunner.RunAndAssert(All.Single(t => t.Name == name), output, mayRefuseNone: name.EndsWith("-skip", StringComparison.Ordinal));
    }

    /// <summary>Seeds built once from the shared assets.</summary>
    private static class Seeds
    {
        private static readonly Lazy<string> s_folder = new(() =>
        {
            string dir = Path.Combine(Path.GetTempPath(), $"saferlhf-fuzz-data-{Guid.NewGuid():N}");
            Directory.CreateDirectory(dir);
            AppDomain.CurrentDomain.ProcessExit += (_, _) =>
            {
                try { Directory.Delete(dir, recursive: true); }
                catch (IOException) { }
            };
            // The first 40 HH-RLHF pairs, as gzip (the whole file makes each input slow to decompress).
            using (var gz = new GZipStream(File.OpenRead(Assets.Require("data/hh-rlhf-harmless-base-test.jsonl.gz")), CompressionMode.Decompress))
            using (var reader = new StreamReader(gz))
            using (var outFile = new GZipStream(File.Create(Path.Combine(dir, "hh.jsonl.gz")), CompressionLevel.Optimal))
            using (var writer = new StreamWriter(outFile))
                for (int i = 0; i < 40 && reader.ReadLine() is { } line; i++) writer.WriteLine(line);
            // Alpaca rows from the PKU-SafeRLHF prompts and first responses.
            using (var writer = new StreamWriter(Path.Combine(dir, "alpaca.jsonl")))
                foreach (var row in PkuSafeRlhfReader.Read(Assets.Require("data/pku-saferlhf-alpaca7b-test-head150.jsonl")).Rows)
                    writer.WriteLine(JsonSerializer.Serialize(new { instruction = row.Prompt, input = "", output = row.Response0 }));
            return dir;
        });

        public static string HhHead => Path.Combine(s_folder.Value, "hh.jsonl.gz");

        public static string Alpaca => Path.Combine(s_folder.Value, "alpaca.jsonl");
    }
}
