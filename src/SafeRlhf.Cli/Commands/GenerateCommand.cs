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

    public static Command Create()
    {
        var modelOption = new Option<string>("--model")
        {
            Description = "Model: llama2.c .bin, .gguf, .safetensors, a Hugging Face folder, a checkpoint folder (checkpoint-N) or a run folder (its final model)",
            Required = true,
        };
        var tokenizerOption = new Option<string?>("--tokenizer")
        {
            Description = "Tokenizer: llama2.c .bin, SentencePiece .model or .gguf (default: tok<vocab>.bin / tokenizer.bin / tokenizer.model " +
                          "beside the model or in a Hugging Face folder, the one its run trained with, else the GGUF's own vocabulary)",
        };
        var promptOption = new Option<string>("--prompt") { Description = "Prompt text (BOS is added)", Required = true };
        var maxNewOption = new Option<int>("--max-new-tokens") { Description = "Most tokens to generate", DefaultValueFactory = _ => 256 };
        var temperatureOption = new Option<double>("--temperature") { Description = "Sampling temperature (0 = greedy)", DefaultValueFactory = _ => 1.0 };
        var topPOption = new Option<double>("--top-p") { Description = "Nucleus sampling mass in (0, 1]", DefaultValueFactory = _ => 0.9 };
        var seedOption = new Option<ulong>("--seed") { Description = "Sampling seed", DefaultValueFactory = _ => 42 };
        var deviceOption = CommonOptions.Device();
        var threadsOption = CommonOptions.Threads();
        var keepOption = new Option<bool>("--keep-quantized")
        {
            Description = "Keep F16/BF16/Q8_0/Q4_0/Q4_K/Q5_K/Q6_K matrices as stored instead of converting them to F32",
        };
        var jsonOption = new Option<bool>("--json") { Description = "Print one JSON object {prompt_ids, generated_ids, text} instead of streaming" };
        var chatOption = new Option<bool>("--chat")
        {
            Description = "Wrap the prompt in the chat template the model was trained with (its run's 'chat_template', default \"" +
                          Rlhf.Data.ChatTemplate.DefaultText + "\")",
        };
        var templateOption = new Option<string?>("--chat-template") { Description = "With --chat: this template instead ({prompt} is replaced)" };
        var command = new Command("generate", "Generate text from a LLaMA model")
        {
            modelOption, tokenizerOption, promptOption, chatOption, templateOption, maxNewOption, temperatureOption, topPOption, seedOption,
            deviceOption, threadsOption, keepOption, jsonOption,
        };
        command.SetAction(parse => CliRunner.Run(parse, () =>
        {
            string modelPath = parse.GetValue(modelOption)!;
            int maxNew = parse.GetValue(maxNewOption);
            if (maxNew < 0) throw new CliException($"--max-new-tokens: must be ≥ 0, got {maxNew}");
            var sampling = new SamplingOptions
            {
                Temperature = parse.GetValue(temperatureOption),
                TopP = parse.GetValue(topPOption),
                Seed = parse.GetValue(seedOption),
            };
            try
            {
                sampling.Validate();
            }
            catch (ArgumentOutOfRangeException e)
            {
                throw new CliException(e.Message.Split(Environment.NewLine)[0]);
            }
            if (!File.Exists(modelPath) && !Directory.Exists(modelPath)) throw new CliException($"model not found: {modelPath}");
            var location = ModelLocator.Resolve(modelPath);
            bool chat = parse.GetValue(chatOption);
            string? templateText = parse.GetValue(templateOption);
            if (templateText is not null && !chat) throw new CliException("--chat-template: applies with --chat");
            string prompt = parse.GetValue(promptOption)!;
            if (chat) prompt = ChatTemplates.For(location, templateText, "--chat-template").Format(prompt);

            var device = DeviceFactory.Create(parse.GetValue(deviceOption)!, parse.GetValue(threadsOption));
            var options = parse.GetValue(keepOption) ? LlamaLoadOptions.FrozenStorage : new LlamaLoadOptions();
            using var weights = Open(location.WeightPath);
            using var model = Wrap(() => LlamaLoader.FromWeightFile(weights, device, options));
            var tokenizer = StageData.Tokenizer(parse.GetValue(tokenizerOption) ?? location.TokenizerPath, weights, model.Config, "pass --tokenizer PATH");

            var promptIds = tokenizer.Encode(prompt, addBos: true, addEos: false);
            // llama2.c models separate stories with BOS (run.c stops on it); other models end with EOS.
            int stopId = weights.Format == WeightFileFormat.Llama2c ? tokenizer.BosId : tokenizer.EosId;
            bool json = parse.GetValue(jsonOption);
            var text = new StringBuilder();
            var utf8 = Encoding.UTF8.GetDecoder();
            var chars = new char[64];
            int prev = promptIds[^1];
            void Emit(int id)
            {
                if (id != tokenizer.BosId && id != tokenizer.EosId)
                {
                    var bytes = tokenizer.DecodePieceBytes(prev, id);
                    if (chars.Length < bytes.Length + 4) chars = new char[bytes.Length + 4];
                    int n = utf8.GetChars(bytes, chars, flush: false);
                    text.Append(chars, 0, n);
                    if (!json)
                    {
                        Console.Out.Write(chars, 0, n);
                        Console.Out.Flush();
                    }
                }
                prev = id;
            }

            if (!json) Console.Out.Write(prompt);
            var watch = Stopwatch.StartNew();
            var generated = maxNew == 0 ? new List<int>() : Generator.Generate(model, promptIds, maxNew, sampling, stopId, Emit);
            watch.Stop();
            int tail = utf8.GetChars([], chars, flush: true);
            text.Append(chars, 0, tail);
            if (json)
            {
                Console.Out.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["prompt_ids"] = promptIds, ["generated_ids"] = generated, ["text"] = text.ToString(),
                }, JsonOutput));
            }
            else
            {
                Console.Out.Write(chars, 0, tail);
                Console.Out.WriteLine();
                Console.Error.WriteLine($"{generated.Count} tokens in {watch.Elapsed.TotalSeconds:F2} s " +
                                        $"({generated.Count / Math.Max(watch.Elapsed.TotalSeconds, 1e-9):F1} tok/s incl. prefill) on {device.Name}");
            }
            return 0;
        }));
        return command;
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
