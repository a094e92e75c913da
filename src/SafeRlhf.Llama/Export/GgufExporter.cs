using System.Runtime.InteropServices;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Tensors;

namespace SafeRlhf.Llama.Export;

/// <summary>Writes a GGUF v3 file of architecture llama that <see cref="GgufReader"/> and llama.cpp load: the llama.*
/// hyper-parameters, the vocabulary in tokenizer.ggml.* and the tensors under llama.cpp names in Meta row order
/// (GGUF keeps wq/wk unpermuted). Norms and the token embedding are F32; linear matrices are F32, or quantized with
/// <see cref="ExportOptions.Quantize"/> (Q8_0 and Q4_0 exactly as the loader quantizes in memory, Q4_K with
/// <see cref="KQuantEncoder"/>); a matrix held quantized keeps its blocks when it is written in its own type.</summary>
internal static class GgufExporter
{
    /// <summary>Key holding the chat template the model was trained with.</summary>
    public const string ChatTemplateKey = Loading.ModelLocator.GgufChatTemplateKey;

    public static void Write(string path, LlamaConfig config, IReadOnlyList<ExportTensor> tensors, ExportVocabulary vocabulary, ExportOptions options)
    {
        var streamed = tensors.Select(t =>
        {
            var type = StoredType(t, options);
            return new StreamedTensor(GgufWriter.ToGgufName(t.Name), type, t.Dims, s =>
            {
                if (t.Blocks is not null && t.HeldType == type)
                {
                    s.Write(t.Blocks());
                    return;
                }
                float[] values = t.Values();
                if (type == DType.F32)
                {
                    s.Write(MemoryMarshal.AsBytes(values.AsSpan()));
                    return;
                }
                var bytes = new byte[WeightEncoder.ByteCount(type, values.Length)];
                WeightEncoder.Encode(type, values, bytes);
                s.Write(bytes);
            });
        }).ToList();
        var types = streamed.Where(t => t.Dims.Length == 2).Select(t => t.DType).Distinct().ToList();
        // llama.cpp's general.file_type: all F32 (0), mostly Q4_0 (2), mostly Q8_0 (7), mostly Q4_K (14, Q4_K_S).
        uint fileType = types.Contains(DType.Q4_K) ? 14u : types.Contains(DType.Q4_0) ? 2u : types.Contains(DType.Q8_0) ? 7u : 0u;
        var metadata = new List<KeyValuePair<string, object>>
        {
            new("general.architecture", "llama"),
            new("general.name", options.Name),
            new("general.file_type", fileType),
        };
        metadata.AddRange(GgufWriter.LlamaHyperParameters(config));
        metadata.AddRange(vocabulary.GgufMetadata());
        if (options.ChatTemplate is { } template)
        {
            metadata.Add(new(ChatTemplateKey, template));
            metadata.Add(new("tokenizer.chat_template", HfExporter.Jinja(template)));
        }
        if (Path.GetDirectoryName(Path.GetFullPath(path)) is { } folder) Directory.CreateDirectory(folder);
        GgufWriter.Write(path, metadata, streamed);
    }

    // The loader's rule: linear matrices whose rows are whole blocks quantize; a quantized matrix stays as held unless
    // another quantized type is asked for; everything else is F32. Q4_K needs rows of whole 256-value super-blocks;
    // other rows of whole 32-value blocks fall back to Q8_0, as init's K-quant mixes do.
    private static DType StoredType(ExportTensor t, ExportOptions options)
    {
        if (t.IsLinear && options.Quantize == DType.Q4_K && t.Dims[^1] % DTypeInfo.KQuantBlock == 0) return DType.Q4_K;
        if (t.IsLinear && options.Quantize is { } q && t.Dims[^1] % DTypeInfo.QuantBlock == 0) return q == DType.Q4_K ? DType.Q8_0 : q;
        if (t.IsLinear && t.Blocks is not null) return t.HeldType;
        return DType.F32;
    }
}
