using System.CommandLine;
using System.Diagnostics;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using SafeRlhf.Llama;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Llama.Tokenizers;

using SafeRlhf.Cli.Stages;

namespace SafeRlhf.Cli.Commands;

/// <summary>`saferlhf generate`: text from a LLaMA model (any --model that <see cref="ModelLocator"/> resolves: a weight
/// file, a Hugging Face, checkpoint or run folder), streamed as it is generated, or as one JSON object with --json;
/// --chat wraps the prompt in the chat template the model was trained with.</summary>
public static class GenerateCommand
{
    private static readonly JsonSerializerOptions JsonOutput = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The command's options.</summary>
    private sealed class Options
    {
        public readonly Option<string> Model = new("--model")
        {
            Description = "Model: llama2.c .bin, .gguf, .safetensors, a Hugging Face folder, a checkpoint folder (checkpoint-N) or a run folder (its final model)",
            Required = true,
        };
        public readonly Option<string?> Tokenizer = new("--tokenizer")
        {
            Description = "Tokenizer: llama2.c .bin, SentencePiece .model or .gguf (default: tok<vocab>.bin / tokenizer.bin / tokenizer.model " +
                          "beside the model or in a Hugging Face folder, the one its run trained with, else the GGUF's own vocabulary)",
        };
        public readonly Option<string> Prompt = new("--prompt") { Description = "Prompt text (BOS is added)", Required = true };
        public readonly Option<int> MaxNew = new("--max-new-tokens") { Description = "Most tokens to generate", DefaultValueFactory = _ => 256 };
        public readonly Option<double> Temperature = new("--temperature") { Description = "Sampling temperature (0 = greedy)", DefaultValueFactory = _ => 1.0 };
        public readonly Option<double> TopP = new("--top-p") { Description = "Nucleus sampling mass in (0, 1]", DefaultValueFactory = _ => 0.9 };
        public readonly Option<ulong> Seed = new("--seed") { Description = "Sampling seed", DefaultValueFactory = _ => 42 };
        public readonly Option<string> Device = CommonOptions.Device();
        public readonly Option<int> Threads = CommonOptions.Threads();
        public readonly Option<string> KvCache = CommonOptions.KvCache();
        public readonly Option<string> MatMulInputs = CommonOptions.MatMulInputs();
        public readonly Option<string> WeightLayout = CommonOptions.WeightLayout();
        public readonly Option<bool> Keep = new("--keep-quantized")
        {
            Description = "Keep F16/BF16/Q8_0/Q4_0/Q4_K/Q5_K/Q6_K matrices as stored instead of converting them to F32",
        };
        public readonly Option<bool> Json = new("--json") { Description = "Print one JSON object {prompt_ids, generated_ids, text} instead of streaming" };
        public readonly Option<bool> Chat = new("--chat")
        {
            Description = "Wrap the prompt in the chat template the model was trained with (its run's 'chat_template', default \"" +
                          Rlhf.Data.ChatTemplate.DefaultText + "\")",
        };
        public readonly Option<string?> Template = new("--chat-template") { Description = "With --chat: this template instead ({prompt} is replaced)" };
    }

    public static Command Create()
    {
        var o = new Options();
        var command = new Command("generate", "Generate text from a LLaMA model")
        {
            o.Model, o.Tokenizer, o.Prompt, o.Chat, o.Template, o.MaxNew, o.Temperature, o.TopP, o.Seed, o.Device, o.Threads, o.KvCache, o.MatMulInputs, o.WeightLayout, o.Keep,
            o.Json,
        };
        command.SetAction(parse => CliRunner.Run(parse, () => Run(parse, o)));
        return command;
    }

    private static int Run(ParseResult parse, Options o)
    {
        string modelPath = parse.GetValue(o.Model)!;
        int maxNew = parse.GetValue(o.MaxNew);
        if (maxNew < 0) throw new CliException($"--max-new-tokens: must be ≥ 0, got {maxNew}");
        var sampling = Sampling(parse, o);
        if (!File.Exists(modelPath) && !Directory.Exists(modelPath)) throw new CliException($"model not found: {modelPath}");
        var location = ModelLocator.Resolve(modelPath);
        string prompt = Prompt(parse, o, location);

        var kvCache = CommonOptions.ParseKvCache(parse.GetValue(o.KvCache));
        var device = DeviceFactory.Create(parse.GetValue(o.Device)!, parse.GetValue(o.Threads), parse.GetValue(o.MatMulInputs)!);
        var options = (parse.GetValue(o.Keep) ? LlamaLoadOptions.FrozenStorage : new LlamaLoadOptions())
            with { InterleaveRows = CommonOptions.InterleaveRows(parse.GetValue(o.WeightLayout), device) };
        using var weights = Open(location.WeightPath);
        using var model = Wrap(() => LlamaLoader.FromWeightFile(weights, device, options));
        model.KvCacheStorage = kvCache;
        var tokenizer = StageData.Tokenizer(parse.GetValue(o.Tokenizer) ?? location.TokenizerPath, weights, model.Config, "pass --tokenizer PATH");

        var promptIds = tokenizer.Encode(prompt, addBos: true, addEos: false);
        // llama2.c models separate stories with BOS (run.c stops on it); other models end with EOS.
        int stopId = weights.Format == WeightFileFormat.Llama2c ? tokenizer.BosId : tokenizer.EosId;
        bool json = parse.GetValue(o.Json);
        var stream = new TextStream(tokenizer, promptIds[^1], echo: !json);
        if (!json) Console.Out.Write(prompt);
        var watch = Stopwatch.StartNew();
        var generated = maxNew == 0 ? new List<int>() : Generator.Generate(model, promptIds, maxNew, sampling, stopId, stream.Emit);
        watch.Stop();
        string text = stream.Finish();
        if (json)
        {
            Console.Out.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["prompt_ids"] = promptIds, ["generated_ids"] = generated, ["text"] = text,
            }, JsonOutput));
        }
        else
        {
            Console.Out.WriteLine();
            Console.Error.WriteLine($"{generated.Count} tokens in {watch.Elapsed.TotalSeconds:F2} s " +
                                    $"({generated.Count / Math.Max(watch.Elapsed.TotalSeconds, 1e-9):F1} tok/s incl. prefill) on {device.Name}");
        }
        return 0;
    }

    /// <summary>--temperature, --top-p and --seed, checked.</summary>
    private static SamplingOptions Sampling(ParseResult parse, Options o)
    {
        var sampling = new SamplingOptions
        {
            Temperature = parse.GetValue(o.Temperature),
            TopP = parse.GetValue(o.TopP),
            Seed = parse.GetValue(o.Seed),
        };
        try
        {
            sampling.Validate();
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new CliException(e.Message.Split(Environment.NewLine)[0]);
        }
        return sampling;
    }

    /// <summary>--prompt, wrapped in the chat template with --chat.</summary>
    private static string Prompt(ParseResult parse, Options o, ModelLocation location)
    {
        bool chat = parse.GetValue(o.Chat);
        string? templateText = parse.GetValue(o.Template);
        if (templateText is not null && !chat) throw new CliException("--chat-template: applies with --chat");
        string prompt = parse.GetValue(o.Prompt)!;
        return chat ? ChatTemplates.For(location, templateText, "--chat-template").Format(prompt) : prompt;
    }

    /// <summary>The generated text, decoded token by token (UTF-8 sequences may span tokens) and, when echoing, written to
    /// the console as it comes.</summary>
    private sealed class TextStream(ITextTokenizer tokenizer, int lastPromptId, bool echo)
    {
        private readonly StringBuilder _text = new();
        private readonly Decoder _utf8 = Encoding.UTF8.GetDecoder();
        private char[] _chars = new char[64];
        private int _prev = lastPromptId;

        public void Emit(int id)
        {
            if (id != tokenizer.BosId && id != tokenizer.EosId)
            {
                var bytes = tokenizer.DecodePieceBytes(_prev, id);
                if (_chars.Length < bytes.Length + 4) _chars = new char[bytes.Length + 4];
                Append(_utf8.GetChars(bytes, _chars, flush: false));
            }
            _prev = id;
        }

        /// <summary>Flushes the decoder; returns the whole text.</summary>
        public string Finish()
        {
            Append(_utf8.GetChars([], _chars, flush: true));
            return _text.ToString();
        }

        private void Append(int n)
        {
            _text.Append(_chars, 0, n);
            if (!echo) return;
            Console.Out.Write(_chars, 0, n);
            Console.Out.Flush();
        }
    }

    private static WeightFile Open(string path) => Wrap(() => WeightFile.Open(path));

    private static T Wrap<T>(Func<T> body)
    {
        try
        {
            return body();
        }
        catch (WeightFormatException e)
        {
            throw new CliException(e.Message);
        }
    }
}
