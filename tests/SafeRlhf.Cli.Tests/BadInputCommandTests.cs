using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Cli.Tests;

/// <summary>Bad command lines and bad input files of each defect class: every one ends in exactly one line
/// "error: …" that names the input, exit code 1, and no stack trace. Unexpected exceptions are internal errors
/// (exit 70, "internal error", a pointer to --verbose); Ctrl-C is 130.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class BadInputCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "saferlhf-bad-input-" + Guid.NewGuid().ToString("N"));

    public BadInputCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static void AssertOneLine((int Code, string Out, string Error) r, params string[] mentions)
    {
        Assert.Equal(CliRunner.BadInput, r.Code);
        var lines = r.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line on stderr, got:\n{r.Error}");
        foreach (var m in mentions) Assert.True(r.Error.Contains(m, StringComparison.Ordinal), $"'{m}' not in: {r.Error}");
        Assert.StartsWith("error: ", lines[0]);
        Assert.DoesNotContain("   at ", r.Error);
        Assert.DoesNotContain("Unhandled exception", r.Error);
        foreach (var m in mentions) Assert.Contains(m, r.Error);
    }

    private string Path_(string name) => Path.Combine(_dir, name);

    private string Stories => Assets.Require("models/stories260K.bin");

    private string Tok512 => Assets.Require("models/tok512.bin");

    /// <summary>A copy of stories260K.bin with one header int32 replaced.</summary>
    private string StoriesWithHeader(int field, int value)
    {
        var bytes = File.ReadAllBytes(Stories);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4 * field), value);
        string path = Path_($"stories-{field}-{value}.bin");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private (int Code, string Out, string Error) Generate(string model, string? tokenizer = null) =>
        CliHarness.Run(["generate", "--model", model, "--tokenizer", tokenizer ?? Tok512, "--prompt", "Once", "--max-new-tokens", "2"]);

    [Theory]
    [InlineData("--no-such-option")]
    [InlineData("no-such-command")]
    [InlineData("generate")]
    [InlineData("generate --model")]
    [InlineData("generate --model m --prompt p --max-new-tokens many")]
    [InlineData("sft --set")]
    [InlineData("bench --threads x")]
    public void BadCommandLinesGiveOneLine(string commandLine)
    {
        var r = CliHarness.Run(commandLine.Split(' '));
        AssertOneLine(r, "--help");
    }

    [Theory]
    [InlineData(3, 0, "n_heads")]   // a head count of 0 used to divide by zero while the message was formatted
    [InlineData(4, 0, "n_kv_heads")]
    [InlineData(2, int.MaxValue, "layers")] // a huge layer count
    [InlineData(5, 0, "sizes must be positive")]
    public void BadLlama2cHeaderIsNamed(int field, int value, string mention)
    {
        string model = StoriesWithHeader(field, value);
        AssertOneLine(Generate(model), model, mention);
    }

    [Fact]
    public void GgufWithADamagedMagicIsReportedAsGguf()
    {
        var bytes = File.ReadAllBytes(Assets.Require("models/llama-2-tiny-random.gguf"));
        bytes[1] ^= 0x20;
        string path = Path_("damaged.bin");
        File.WriteAllBytes(path, bytes);
        AssertOneLine(Generate(path), path, "not a GGUF file");
    }

    [Fact]
    public void GgufSpecialTokenOutsideTheVocabularyIsNamed()
    {
        // Rewrite tokenizer.ggml.bos_token_id (a uint32 value after its key) to an id past the 32000 tokens.
        var bytes = File.ReadAllBytes(Assets.Require("models/llama-2-tiny-random.gguf"));
        byte[] key = Encoding.ASCII.GetBytes("tokenizer.ggml.bos_token_id");
        int at = bytes.AsSpan().IndexOf(key);
        Assert.True(at > 0, "the seed GGUF has a bos_token_id");
        int valueAt = at + key.Length + 4; // after the key: the value type (uint32), then the value
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(valueAt), 40000);
        string path = Path_("bos.gguf");
        File.WriteAllBytes(path, bytes);
        AssertOneLine(CliHarness.Run("generate", "--model", path, "--prompt", "Once", "--max-new-tokens", "1"), path, "bos_token_id", "40000");
    }

    [Fact]
    public void SmallOrOverlongLlama2cTokenizerIsNamed()
    {
        // Fewer than 259 tokens: the first 100 entries of tok512.bin.
        var bytes = File.ReadAllBytes(Tok512);
        int pos = 4;
        for (int i = 0; i < 100; i++) pos += 8 + BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(pos + 4));
        string small = Path_("tok100.bin");
        File.WriteAllBytes(small, bytes.AsSpan(0, pos).ToArray());
        var r = CliHarness.Run("generate", "--model", Stories, "--tokenizer", small, "--prompt", "Once", "--max-new-tokens", "1");
        AssertOneLine(r, small);

        // A huge max_token_length.
        var huge = File.ReadAllBytes(Tok512);
        BinaryPrimitives.WriteInt32LittleEndian(huge, int.MaxValue);
        string overlong = Path_("tok-huge.bin");
        File.WriteAllBytes(overlong, huge);
        AssertOneLine(Generate(Stories, overlong), overlong, "max_token_length");
    }

    [Fact]
    public void BadSentencePieceModelIsNamed()
    {
        var bytes = File.ReadAllBytes(Assets.Require("tokenizer/llama_tokenizer.model"));
        string cut = Path_("cut.model");
        File.WriteAllBytes(cut, bytes.AsSpan(0, bytes.Length / 2).ToArray());
        AssertOneLine(Generate(Stories, cut), cut);
    }

    [Fact]
    public void HfConfigWithZeroHeadsOrANonNumberIsNamed()
    {
        string hf = Path_("hf");
        Directory.CreateDirectory(hf);
        File.WriteAllText(Path.Combine(hf, "config.json"), """
            {"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2000000000, "num_attention_heads": 0,
             "vocab_size": 512, "max_position_embeddings": 512}
            """);
        File.WriteAllBytes(Path.Combine(hf, "model.safetensors"), [2, 0, 0, 0, 0, 0, 0, 0, (byte)'{', (byte)'}']);
        AssertOneLine(Generate(hf), "config.json", "n_heads");

        File.WriteAllText(Path.Combine(hf, "config.json"), """
            {"hidden_size": "64", "intermediate_size": 172, "num_hidden_layers": 2, "num_attention_heads": 8,
             "vocab_size": 512, "max_position_embeddings": 512}
            """);
        AssertOneLine(Generate(hf), "config.json", "hidden_size");

        File.WriteAllText(Path.Combine(hf, "config.json"), """
            {"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2000000000, "num_attention_heads": 8,
             "num_key_value_heads": 4, "vocab_size": 512, "max_position_embeddings": 512, "tie_word_embeddings": true}
            """);
        AssertOneLine(Generate(hf), hf, "2000000000 layers");
    }

    [Fact]
    public void SafetensorsWithANonNumberOffsetOrALoneSurrogateIsNamed()
    {
        string Write(string name, string header)
        {
            var json = Encoding.UTF8.GetBytes(header);
            var bytes = new byte[8 + json.Length + 16];
            BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
            json.CopyTo(bytes, 8);
            string path = Path_(name);
            File.WriteAllBytes(path, bytes);
            return path;
        }
        string offsets = Write("offsets.safetensors", """{"x": {"dtype": "F32", "shape": [4], "data_offsets": ["0", 16]}}""");
        AssertOneLine(Generate(offsets), offsets, "data_offsets");
        string surrogate = Write("surrogate.safetensors", """{"x\ud800": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}""");
        AssertOneLine(Generate(surrogate), surrogate, "Unicode");
    }

    private string SftConfig(string data, string? extra = null)
    {
        var config = new JsonObject
        {
            ["model"] = Stories, ["data"] = data, ["max_length"] = 64,
            ["train"] = new JsonObject { ["steps"] = 1, ["batch_size"] = 1, ["lr"] = 1e-3 },
        };
        string path = Path_("sft-" + Guid.NewGuid().ToString("N")[..6] + ".json");
        File.WriteAllText(path, extra is null ? config.ToJsonString() : config.ToJsonString()[..^1] + "," + extra + "}");
        return path;
    }

    private (int Code, string Out, string Error) Sft(string config) =>
        CliHarness.Run("sft", "--config", config, "--out", Path_("run-" + Guid.NewGuid().ToString("N")[..6]), "--quiet");

    [Fact]
    public void DatasetRowWithALoneSurrogateOrInvalidUtf8IsNamed()
    {
        string data = Path_("alpaca.jsonl");
        File.WriteAllText(data, "{\"instruction\": \"Hi\", \"output\": \"Hello.\"}\n{\"instruction\": \"Hi \\ud800\", \"output\": \"x\"}\n");
        AssertOneLine(Sft(SftConfig(data)), "alpaca.jsonl:2:", "Unicode");

        File.WriteAllBytes(data, [.. "{\"instruction\": \"Hi\", \"output\": \""u8, 0xFF, .. "\"}\n"u8]);
        AssertOneLine(Sft(SftConfig(data)), "alpaca.jsonl:1:", "UTF-8");
    }

    [Fact]
    public void TruncatedOrCorruptGzipDatasetIsNamed()
    {
        var rows = string.Join("\n", Enumerable.Range(0, 200).Select(i => $"{{\"instruction\": \"Say {i}.\", \"output\": \"{i} is a number.\"}}")) + "\n";
        using var buffer = new MemoryStream();
        using (var gz = new GZipStream(buffer, CompressionLevel.Optimal, leaveOpen: true)) gz.Write(Encoding.UTF8.GetBytes(rows));
        var full = buffer.ToArray();

        string truncated = Path_("truncated.jsonl.gz");
        File.WriteAllBytes(truncated, full.AsSpan(0, full.Length * 2 / 3).ToArray());
        AssertOneLine(Sft(SftConfig(truncated)), truncated, "gzip");

        string corrupt = Path_("corrupt.jsonl.gz");
        var damaged = (byte[])full.Clone();
        for (int i = 12; i < 40; i++) damaged[i] ^= 0x5A;
        File.WriteAllBytes(corrupt, damaged);
        AssertOneLine(Sft(SftConfig(corrupt)), corrupt, "gzip");
    }

    [Fact]
    public void ConfigWithARepeatedKeyOrALoneSurrogateIsNamed()
    {
        string data = Path_("ok.jsonl");
        File.WriteAllText(data, "{\"instruction\": \"Hi\", \"output\": \"Hello.\"}\n");
        AssertOneLine(Sft(SftConfig(data, "\"seed\": 1, \"seed\": 2")), "--config", "seed");
        AssertOneLine(Sft(SftConfig(data, "\"tokenizer\": \"a\\ud800\"")), "--config");
        string notUtf8 = Path_("latin1.json");
        File.WriteAllBytes(notUtf8, [.. "{\"model\": \"caf"u8, 0xE9, .. "\"}"u8]);
        AssertOneLine(Sft(notUtf8), notUtf8, "UTF-8");
    }

    [Fact]
    public void UnexpectedExceptionsAreInternalErrorsAndCtrlCIs130()
    {
        var (oldError, error) = (Console.Error, new StringWriter());
        Console.SetError(error);
        try
        {
            Assert.Equal(CliRunner.InternalError, CliRunner.Report(new NullReferenceException("boom"), verbose: false, "sft"));
            string line = error.ToString();
            Assert.Single(line.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.StartsWith("error: internal error in 'sft': NullReferenceException: boom", line);
            Assert.Contains("--verbose", line);

            error.GetStringBuilder().Clear();
            Assert.Equal(CliRunner.InternalError, CliRunner.Report(Thrown(), verbose: true, "eval"));
            Assert.Contains("   at ", error.ToString());

            error.GetStringBuilder().Clear();
            Assert.Equal(CliRunner.Interrupted, CliRunner.Report(new OperationCanceledException(), verbose: false, "sft"));
            Assert.Equal("interrupted", error.ToString().Trim());
            Assert.NotEqual(CliRunner.BadInput, CliRunner.InternalError);
        }
        finally
        {
            Console.SetError(oldError);
        }
    }

    // An exception that has been thrown, so that it carries a stack trace for --verbose to print.
    private static Exception Thrown()
    {
        try
        {
            throw new IndexOutOfRangeException("x");
        }
        catch (IndexOutOfRangeException e)
        {
            return e;
        }
    }
}
