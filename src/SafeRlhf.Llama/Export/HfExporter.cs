using System.Runtime.InteropServices;
using System.Text.Json;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Tensors;

namespace SafeRlhf.Llama.Export;

/// <summary>Writes a Hugging Face LLaMA folder that <see cref="HfCheckpoint"/> and transformers' LlamaForCausalLM read:
/// config.json, model.safetensors (HF names, F32, wq/wk rows permuted to HF's rotate-half order by
/// <see cref="HfRopePermutation"/>; no lm_head.weight when the embeddings are tied), generation_config.json and the
/// tokenizer (tokenizer.model, tokenizer_config.json, special_tokens_map.json).</summary>
internal static class HfExporter
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static void Write(string folder, LlamaConfig config, IReadOnlyList<ExportTensor> tensors, ExportVocabulary vocabulary, ExportOptions options)
    {
        Directory.CreateDirectory(folder);
        var streamed = tensors.Select(t => new StreamedTensor(HfCheckpoint.ToHfName(t.Name), DType.F32, t.Dims, s =>
        {
            var bytes = MemoryMarshal.AsBytes(t.Values().AsSpan());
            int heads = t.Name.EndsWith(".attention.wq.weight", StringComparison.Ordinal) ? config.NHeads
                : t.Name.EndsWith(".attention.wk.weight", StringComparison.Ordinal) ? config.NKvHeads : 0;
            if (heads == 0)
            {
                s.Write(bytes);
                return;
            }
            var permuted = new byte[bytes.Length];
            HfRopePermutation.Permute(bytes, permuted, heads, t.Dims[1] * sizeof(float));
            s.Write(permuted);
        })).ToList();
        Safetensors.WriteStreamed(Path.Combine(folder, HfCheckpoint.SingleFile), streamed, new Dictionary<string, string> { ["format"] = "pt" });

        var sp = vocabulary.Model;
        WriteJson(folder, HfCheckpoint.ConfigFile, new Dictionary<string, object>
        {
            ["architectures"] = new[] { "LlamaForCausalLM" },
            ["model_type"] = "llama",
            ["hidden_size"] = config.Dim,
            ["intermediate_size"] = config.HiddenDim,
            ["num_hidden_layers"] = config.NLayers,
            ["num_attention_heads"] = config.NHeads,
            ["num_key_value_heads"] = config.NKvHeads,
            ["vocab_size"] = config.VocabSize,
            ["max_position_embeddings"] = config.SeqLen,
            ["rms_norm_eps"] = config.NormEps,
            ["rope_theta"] = config.RopeTheta,
            ["tie_word_embeddings"] = config.TiedEmbeddings,
            ["hidden_act"] = "silu",
            ["attention_bias"] = false,
            ["mlp_bias"] = false,
            ["pretraining_tp"] = 1,
            ["initializer_range"] = 0.02,
            ["bos_token_id"] = sp.BosId,
            ["eos_token_id"] = sp.EosId,
            ["torch_dtype"] = "float32",
            ["use_cache"] = true,
        });
        WriteJson(folder, "generation_config.json", new Dictionary<string, object>
        {
            ["bos_token_id"] = sp.BosId,
            ["eos_token_id"] = sp.EosId,
            ["max_length"] = config.SeqLen,
        });
        WriteTokenizer(folder, vocabulary, options);
    }

    private static void WriteTokenizer(string folder, ExportVocabulary vocabulary, ExportOptions options)
    {
        string target = Path.Combine(folder, "tokenizer.model");
        if (vocabulary.IsSentencePieceFile) File.Copy(vocabulary.SourcePath, target, overwrite: true);
        else File.WriteAllBytes(target, SentencePieceModelWriter.Serialize(vocabulary.Model));
        var sp = vocabulary.Model;
        string Piece(int id) => sp.Pieces[id].Piece;
        var config = new Dictionary<string, object?>
        {
            ["tokenizer_class"] = "LlamaTokenizer",
            ["bos_token"] = Piece(sp.BosId),
            ["eos_token"] = Piece(sp.EosId),
            ["unk_token"] = Piece(sp.UnkId),
            ["pad_token"] = sp.PadId >= 0 ? Piece(sp.PadId) : null,
            ["add_bos_token"] = true,
            ["add_eos_token"] = false,
            ["legacy"] = true,
            ["clean_up_tokenization_spaces"] = false,
            ["model_max_length"] = int.MaxValue,
            ["name_or_path"] = options.Name,
        };
        if (options.ChatTemplate is { } template) config["chat_template"] = Jinja(template);
        WriteJson(folder, "tokenizer_config.json", config);
        WriteJson(folder, "special_tokens_map.json", new Dictionary<string, object>
        {
            ["bos_token"] = Piece(sp.BosId), ["eos_token"] = Piece(sp.EosId), ["unk_token"] = Piece(sp.UnkId),
        });
    }

    /// <summary>The chat template as a transformers Jinja template: the last user message in place of {prompt}
    /// (the BOS is added by the tokenizer).</summary>
    internal static string Jinja(string template)
    {
        const string placeholder = "{prompt}";
        int at = template.IndexOf(placeholder, StringComparison.Ordinal);
        if (at < 0) throw new ArgumentException($"chat template \"{template}\" holds no {placeholder}");
        static string Literal(string s) => "'" + s.Replace("\\", "\\\\").Replace("'", "\\'") + "'";
        return "{{ " + Literal(template[..at]) + " + messages[-1]['content'] + " + Literal(template[(at + placeholder.Length)..]) + " }}";
    }

    private static void WriteJson<T>(string folder, string name, T value) =>
        File.WriteAllText(Path.Combine(folder, name), JsonSerializer.Serialize(value, Json) + "\n");
}
