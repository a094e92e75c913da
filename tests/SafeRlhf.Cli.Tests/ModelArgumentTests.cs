using System.Text.Json;
using System.Text.Json.Nodes;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Llama.Tokenizers;
using SafeRlhf.Rlhf.Data;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Cli.Tests;

/// <summary>`--model` as a run folder, a checkpoint folder or its 'latest' pointer (no --tokenizer needed), and the chat
/// template that travels with a run into `generate --chat`.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class ModelArgumentTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "saferlhf-model-arg-" + Guid.NewGuid().ToString("N"));

    public ModelArgumentTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private static string Model => Assets.Require("models/stories260K.bin");
    private static Llama2cTokenizer Tok512 => Llama2cTokenizer.Load(Assets.Require("models/tok512.bin"));

    private string Sft(string name, string? template)
    {
        string data = Path.Combine(_dir, "alpaca.jsonl");
        File.WriteAllText(data, """{"instruction": "Tell a story about a cat.", "output": "Once upon a time there was a cat named Tom."}""" + "\n" +
                                """{"instruction": "What did Lily see?", "output": "Lily saw a big red ball and a happy dog."}""" + "\n");
        var config = new JsonObject
        {
            ["model"] = Model, ["data"] = data, ["max_length"] = 64, ["seed"] = 5,
            ["train"] = new JsonObject { ["steps"] = 1, ["batch_size"] = 2, ["lr"] = 1e-3, ["warmup_ratio"] = 0.0 },
        };
        if (template is not null) config["chat_template"] = template;
        string configPath = Path.Combine(_dir, name + ".json");
        File.WriteAllText(configPath, config.ToJsonString());
        string run = Path.Combine(_dir, name);
        var r = CliHarness.Run("sft", "--config", configPath, "--out", run, "--device", "cpu", "--quiet");
        Assert.True(r.Code == 0, r.Error);
        return run;
    }

    private static int[] PromptIds(params string[] args)
    {
        var r = CliHarness.Run(["generate", .. args, "--max-new-tokens", "0", "--json", "--device", "cpu"]);
        Assert.True(r.Code == 0, r.Error);
        using var doc = JsonDocument.Parse(r.Out);
        return doc.RootElement.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
    }

    [Fact]
    public void RunCheckpointAndLatestLoadWithoutTokenizerAndUseTheRunsChatTemplate()
    {
        const string template = "Q: {prompt}\nA:";
        string run = Sft("custom", template);
        string checkpoint = Path.Combine(run, File.ReadAllText(Path.Combine(run, "latest")).Trim());
        // The template travels in the run's config.json and in the checkpoint's metadata.
        using (var config = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(run, "config.json"))))
            Assert.Equal(template, config.RootElement.GetProperty("chat_template").GetString());
        Assert.Equal(template, LlamaCheckpoint.ReadMetadata(Path.Combine(checkpoint, "model.safetensors"))[ModelLocator.ChatTemplateKey]);

        var expected = Tok512.Encode("Q: hi there\nA:", addBos: true, addEos: false).ToArray();
        foreach (var model in new[] { run, checkpoint, Path.Combine(run, "latest"), Path.Combine(checkpoint, "model.safetensors") })
            Assert.Equal(expected, PromptIds("--model", model, "--prompt", "hi there", "--chat"));
        // The template and the vocabulary travel into an exported GGUF, and as a Jinja template into a Hugging Face folder.
        string gguf = Path.Combine(_dir, "custom.gguf"), hf = Path.Combine(_dir, "custom-hf");
        Assert.Equal(0, CliHarness.Run("export", "--model", run, "--format", "gguf", "--out", gguf).Code);
        Assert.Equal(expected, PromptIds("--model", gguf, "--prompt", "hi there", "--chat"));
        Assert.Equal(0, CliHarness.Run("export", "--model", checkpoint, "--format", "hf", "--out", hf).Code);
        using (var tokenizerConfig = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(hf, "tokenizer_config.json"))))
            Assert.Equal("{{ 'Q: ' + messages[-1]['content'] + '\nA:' }}", tokenizerConfig.RootElement.GetProperty("chat_template").GetString());
        // Without --chat the prompt is used as given.
        Assert.Equal(Tok512.Encode("hi there", addBos: true, addEos: false).ToArray(), PromptIds("--model", run, "--prompt", "hi there"));
        // --chat-template overrides the saved one.
        Assert.Equal(Tok512.Encode("<<hi>>", addBos: true, addEos: false).ToArray(),
            PromptIds("--model", checkpoint, "--prompt", "hi", "--chat", "--chat-template", "<<{prompt}>>"));
    }

    [Fact]
    public void ChatOnAPlainModelUsesTheSafeRlhfTemplate()
    {
        var expected = Tok512.Encode("BEGINNING OF CONVERSATION: USER: Where is the sun? ASSISTANT:", addBos: true, addEos: false).ToArray();
        Assert.Equal(expected, PromptIds("--model", Model, "--prompt", "Where is the sun?", "--chat"));
        Assert.Equal(ChatTemplate.DefaultText, ChatTemplate.Default.Text);
    }

    [Theory]
    [InlineData("no placeholder", "exactly once")]
    [InlineData("{prompt} and {prompt}", "exactly once")]
    [InlineData("USER: {prompt} {answer}", "{answer}")]
    public void BadChatTemplatesAreNamed(string template, string mention)
    {
        string data = Path.Combine(_dir, "d.jsonl");
        File.WriteAllText(data, """{"instruction": "a", "output": "b"}""" + "\n");
        string config = Path.Combine(_dir, "c.json");
        File.WriteAllText(config, new JsonObject { ["model"] = Model, ["data"] = data }.ToJsonString());
        var r = CliHarness.Run("sft", "--config", config, "--set", $"chat_template={template}", "--out", Path.Combine(_dir, "bad"), "--device", "cpu");
        Assert.Equal(1, r.Code);
        Assert.Contains("chat_template", r.Error);
        Assert.Contains(mention, r.Error);

        var g = CliHarness.Run("generate", "--model", Model, "--prompt", "x", "--chat", "--chat-template", template);
        Assert.Equal(1, g.Code);
        Assert.Contains("--chat-template", g.Error);
    }

    [Theory]
    [InlineData("sft")]
    [InlineData("reward")]
    [InlineData("cost")]
    [InlineData("dpo")]
    [InlineData("ppo")]
    [InlineData("ppo-lag")]
    [InlineData("reward-shaping")]
    [InlineData("eval")]
    [InlineData("arena")]
    public void EveryStagesHelpStatesTheChatTemplate(string stage)
    {
        var r = CliHarness.Run(stage, "--help");
        Assert.Equal(0, r.Code);
        string text = string.Join(" ", r.Out.Split((char[])[' ', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(ChatTemplate.DefaultText, text);
        Assert.Contains("chat_template", text);
    }

    [Fact]
    public void AFolderWithoutAModelIsNamed()
    {
        string empty = Path.Combine(_dir, "empty-run");
        Directory.CreateDirectory(empty);
        var r = CliHarness.Run("generate", "--model", empty, "--prompt", "x");
        Assert.Equal(1, r.Code);
        Assert.Contains(empty, r.Error);
        Assert.Contains("no loadable model", r.Error);
    }

    [Fact]
    public void TrainingStartsFromARunFolder()
    {
        string first = Sft("first", template: null);
        var location = ModelLocator.Resolve(first);
        Assert.Equal(ModelSourceKind.Run, location.Kind);
        // The run's checkpoint carries a copy of the tokenizer it was trained with.
        Assert.Equal(File.ReadAllBytes(Assets.Require("models/tok512.bin")), File.ReadAllBytes(location.TokenizerPath!));
        Assert.Equal(ChatTemplate.DefaultText, location.ChatTemplate);
        using var weights = WeightFile.Open(location.WeightPath);
        Assert.Equal(WeightFileFormat.Safetensors, weights.Format);
        var info = CliHarness.Run("info", "--model", first);
        Assert.True(info.Code == 0, info.Error);
        Assert.Contains("(Run)", info.Out);
        Assert.Contains(location.WeightPath, info.Out);
        Assert.Contains(location.TokenizerPath!, info.Out);
        Assert.Contains(ChatTemplate.DefaultText, info.Out);

        string data = Path.Combine(_dir, "alpaca.jsonl");
        string config = Path.Combine(_dir, "second.json");
        File.WriteAllText(config, new JsonObject
        {
            ["model"] = first, ["data"] = data, ["max_length"] = 64,
            ["train"] = new JsonObject { ["steps"] = 1, ["batch_size"] = 2 },
        }.ToJsonString());
        var r = CliHarness.Run("sft", "--config", config, "--out", Path.Combine(_dir, "second"), "--device", "cpu", "--quiet");
        Assert.True(r.Code == 0, r.Error);
    }
}
