using System.CommandLine;
using SafeRlhf.Llama.Export;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Tensors;

namespace SafeRlhf.Cli.Commands;

/// <summary>`saferlhf export`: a trained policy as a Hugging Face folder or a GGUF file (see <see cref="ModelExporter"/>).</summary>
public static class ExportCommand
{
    public static Command Create()
    {
        var modelOption = new Option<string>("--model")
        {
            Description = "Policy to export: a run folder (its final model), a checkpoint folder, a run's 'latest', or a weight file (.safetensors, .gguf, llama2.c .bin, Hugging Face folder)",
            Required = true,
        };
        var formatOption = new Option<string>("--format") { Description = "hf (a Hugging Face LlamaForCausalLM folder) or gguf (a llama.cpp file)", Required = true };
        formatOption.AcceptOnlyFromAmong("hf", "gguf");
        var outOption = new Option<string>("--out") { Description = "Output folder (hf) or file (gguf)", Required = true };
        var mergeOption = new Option<bool>("--merge-lora")
        {
            Description = "Fold LoRA adapters into the base weights (W + alpha/r·B·A); a model with adapters is refused without it",
        };
        var quantizeOption = new Option<string?>("--quantize")
        {
            Description = "gguf only: store the linear matrices as q8_0, q4_0 or q4_k (q4_k needs rows that are a multiple of 256 long; " +
                          "other matrices fall back to q8_0, or F32 when not a multiple of 32; norms and embeddings stay F32)",
        };
        quantizeOption.AcceptOnlyFromAmong("q8_0", "q4_0", "q4_k");
        var tokenizerOption = new Option<string?>("--tokenizer")
        {
            Description = "Tokenizer to store (default: the one saved with the model or its run, beside it, or a GGUF's own vocabulary)",
        };
        var threadsOption = CommonOptions.Threads();
        var command = new Command("export",
            "Export a trained policy to a Hugging Face folder (config.json, model.safetensors with HF names and q/k order, tokenizer.model, " +
            "generation_config.json) or a GGUF file (llama metadata and vocabulary) for transformers, llama.cpp and the tools built on them. " +
            "Reward and cost models are not exported (neither format has their score head).")
        {
            modelOption, formatOption, outOption, mergeOption, quantizeOption, tokenizerOption, threadsOption,
        };
        command.SetAction(parse => CliRunner.Run(parse, () =>
        {
            string modelPath = parse.GetValue(modelOption)!;
            if (!File.Exists(modelPath) && !Directory.Exists(modelPath)) throw new CliException($"model not found: {modelPath}");
            string outPath = parse.GetValue(outOption)!;
            var location = ModelLocator.Resolve(modelPath);
            string? tokenizer = parse.GetValue(tokenizerOption);
            if (tokenizer is not null && !File.Exists(tokenizer)) throw new CliException($"tokenizer not found: {tokenizer}");
            var options = new ExportOptions
            {
                Format = parse.GetValue(formatOption) == "hf" ? ExportFormat.HuggingFace : ExportFormat.Gguf,
                MergeLora = parse.GetValue(mergeOption),
                Quantize = parse.GetValue(quantizeOption) switch { "q8_0" => DType.Q8_0, "q4_0" => DType.Q4_0, "q4_k" => DType.Q4_K, _ => null },
                Name = NameOf(location),
                ChatTemplate = location.ChatTemplate,
            };
            if (options.ChatTemplate is { } saved) ChatTemplates.Parse(saved, $"chat template saved with {modelPath}");
            if (options.Format == ExportFormat.HuggingFace && File.Exists(outPath))
                throw new CliException($"--out: {outPath} is a file; --format hf writes a folder");
            if (options.Format == ExportFormat.Gguf && Directory.Exists(outPath))
                throw new CliException($"--out: {outPath} is a folder; --format gguf writes one file (e.g. {Path.Combine(outPath, "model.gguf")})");
            var device = DeviceFactory.Create(DeviceFactory.DefaultName, parse.GetValue(threadsOption));
            ModelExporter.Export(location, tokenizer, options, device, outPath);
            Console.WriteLine(outPath);
            return 0;
        }));
        return command;
    }

    private static string NameOf(ModelLocation location)
    {
        string path = Path.GetFullPath(location.RunFolder ?? location.Requested).TrimEnd(Path.DirectorySeparatorChar);
        return Path.GetFileNameWithoutExtension(path);
    }
}
