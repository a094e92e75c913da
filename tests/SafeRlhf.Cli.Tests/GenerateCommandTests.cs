using System.CommandLine;
using System.Text.Json;
using SafeRlhf.Cli.Commands;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Cli.Tests;

/// <summary>Tests that redirect the process-wide Console run alone.</summary>
[CollectionDefinition(nameof(ConsoleCollection), DisableParallelization = true)]
public sealed class ConsoleCollection;

[Collection(nameof(ConsoleCollection))]
public sealed class GenerateCommandTests
{
    /// <summary>Runs `saferlhf generate ARGS` in-process; returns the exit code, stdout and stderr.</summary>
    private static (int Code, string Out, string Error) Generate(params string[] args)
    {
        var root = new RootCommand { GenerateCommand.Create() };
        root.Options.Add(CliRunner.VerboseOption);
        var (oldOut, oldError) = (Console.Out, Console.Error);
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try
        {
            int code = root.Parse(["generate", .. args]).Invoke();
            return (code, stdout.ToString(), stderr.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldError);
        }
    }

    public static TheoryData<string> GoldenFiles()
    {
        var data = new TheoryData<string>();
        foreach (var f in Assets.Glob("golden", "stories260K_llama2c_*.json")) data.Add(Path.GetFileName(f));
        return data;
    }

    [Theory]
    [MemberData(nameof(GoldenFiles))]
    public void GreedyJsonMatchesTheLlama2cGolden(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Assets.Require(Path.Combine("golden", name))));
        var golden = doc.RootElement;
        int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();
        var expected = Ints(golden.GetProperty("greedy_continuation_ids"));

        // No --tokenizer: tok512.bin beside stories260K.bin is found.
        var (code, stdout, stderr) = Generate("--model", Assets.Require("models/stories260K.bin"), "--prompt", golden.GetProperty("prompt").GetString()!,
            "--max-new-tokens", expected.Length.ToString(), "--temperature", "0", "--json");
        Assert.True(code == 0, stderr);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        using var result = JsonDocument.Parse(lines[0]);
        var root = result.RootElement;
        Assert.Equal(["prompt_ids", "generated_ids", "text"], root.EnumerateObject().Select(p => p.Name));
        Assert.Equal(Ints(golden.GetProperty("prompt_ids")), Ints(root.GetProperty("prompt_ids")));
        Assert.Equal(expected, Ints(root.GetProperty("generated_ids")));
        Assert.False(string.IsNullOrWhiteSpace(root.GetProperty("text").GetString()));
    }

    [Fact]
    public void KvCacheOptionKeepsF32ExactAndRunsBf16OnEveryCpuDevice()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Assets.Glob("golden", "stories260K_llama2c_*.json").First()));
        var golden = doc.RootElement;
        var expected = golden.GetProperty("greedy_continuation_ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
        string[] common = ["--model", Assets.Require("models/stories260K.bin"), "--prompt", golden.GetProperty("prompt").GetString()!,
            "--max-new-tokens", expected.Length.ToString(), "--temperature", "0", "--json"];
        int[] Ids(string json) => JsonDocument.Parse(json).RootElement.GetProperty("generated_ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();

        // f32 (explicit) is the default path: llama2.c's greedy tokens
        var f32 = Generate([.. common, "--kv-cache", "f32"]);
        Assert.True(f32.Code == 0, f32.Error);
        Assert.Equal(expected, Ids(f32.Out));

        // bf16 runs where attention reads BF16 keys and values (the reference device here)
        var bf16 = Generate([.. common, "--kv-cache", "bf16", "--device", "reference"]);
        Assert.True(bf16.Code == 0, bf16.Error);
        Assert.Equal(expected.Length, Ids(bf16.Out).Length);

        // the native CPU backend reads the same BF16 cache: the reference's greedy tokens
        var cpu = Generate([.. common, "--kv-cache", "bf16", "--device", "cpu"]);
        Assert.True(cpu.Code == 0, cpu.Error);
        Assert.Equal(Ids(bf16.Out), Ids(cpu.Out));

        var unknown = Generate([.. common, "--kv-cache", "q8"]);
        Assert.Equal(1, unknown.Code);
        Assert.Contains("--kv-cache: unknown KV cache type 'q8' (valid: f32, bf16)", unknown.Error);
    }

    [Theory]
    [InlineData("cpu", "bf16", "--matmul-inputs bf16: BF16 matmul inputs run on cuBLAS tensor cores with --device cuda only, not 'cpu'")]
    [InlineData("ilgpu-cpu", "bf16", "--matmul-inputs bf16: BF16 matmul inputs run on cuBLAS tensor cores with --device cuda only, not 'ilgpu-cpu'")]
    [InlineData("cpu", "fp8", "--matmul-inputs: unknown operand precision 'fp8' (valid: f32, bf16)")]
    public void MatMulInputsBf16IsRefusedOffCuda(string device, string inputs, string message)
    {
        var (code, stdout, stderr) = Generate("--model", Assets.Require("models/stories260K.bin"), "--prompt", "Lily", "--max-new-tokens", "2",
            "--device", device, "--matmul-inputs", inputs);
        Assert.Equal(1, code);
        Assert.Contains(message, stderr);
        Assert.Equal("", stdout);
    }

    [Fact]
    public void StreamedTextIsThePromptAndTheJsonText()
    {
        string model = Assets.Require("models/stories260K.bin");
        string[] common = ["--model", model, "--tokenizer", Assets.Require("models/tok512.bin"), "--prompt", "Lily saw a cat",
            "--max-new-tokens", "20", "--temperature", "0.8", "--top-p", "0.9", "--seed", "7"];
        var streamed = Generate(common);
        var json = Generate([.. common, "--json"]);
        Assert.True(streamed.Code == 0, streamed.Error);
        Assert.True(json.Code == 0, json.Error);
        using var doc = JsonDocument.Parse(json.Out);
        Assert.Equal("Lily saw a cat" + doc.RootElement.GetProperty("text").GetString() + Environment.NewLine, streamed.Out);
        Assert.Contains("tok/s", streamed.Error);
    }

    [Fact]
    public void GgufModelGeneratesWithItsOwnVocabulary()
    {
        var (code, stdout, stderr) = Generate("--model", Assets.Require("models/llama-2-tiny-random.gguf"), "--prompt", "Hello",
            "--max-new-tokens", "5", "--temperature", "0", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var generated = doc.RootElement.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()).ToList();
        Assert.InRange(generated.Count, 1, 5);
        Assert.All(generated, id => Assert.InRange(id, 0, 31999));
        Assert.Equal(1, doc.RootElement.GetProperty("prompt_ids")[0].GetInt32());
    }

    [Fact]
    public void MissingModelFailsNamingTheFile()
    {
        string missing = Path.Combine(Path.GetTempPath(), "saferlhf-no-such-model-" + Guid.NewGuid().ToString("N") + ".bin");
        var (code, stdout, stderr) = Generate("--model", missing, "--prompt", "hi");
        Assert.NotEqual(0, code);
        Assert.Contains(missing, stderr);
        Assert.Equal("", stdout);
    }

    [Fact]
    public void MissingTokenizerBesideTheModelIsReported()
    {
        string dir = Path.Combine(Path.GetTempPath(), "saferlhf-generate-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string model = Path.Combine(dir, "model.bin");
            File.Copy(Assets.Require("models/stories260K.bin"), model);
            var (code, _, stderr) = Generate("--model", model, "--prompt", "hi");
            Assert.NotEqual(0, code);
            Assert.Contains("no tokenizer found", stderr);
            Assert.Contains(Path.Combine(dir, "tok512.bin"), stderr);

            string corrupt = Path.Combine(dir, "corrupt.bin");
            File.WriteAllBytes(corrupt, File.ReadAllBytes(model).AsSpan(0, 1000).ToArray());
            (code, _, stderr) = Generate("--model", corrupt, "--tokenizer", Assets.Require("models/tok512.bin"), "--prompt", "hi");
            Assert.NotEqual(0, code);
            Assert.Contains(corrupt, stderr);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
