namespace SafeRlhf.Llama.Formats;

/// <summary>LLaMA hyper-parameters as a weight file states them (llama2.c header, HF config.json, GGUF llama.* keys).</summary>
public sealed record LlamaFileConfig
{
    public required int Dim { get; init; }
    public required int HiddenDim { get; init; }
    public required int NLayers { get; init; }
    public required int NHeads { get; init; }
    public required int NKvHeads { get; init; }
    public required int VocabSize { get; init; }
    /// <summary>Context length the model was trained with.</summary>
    public required int SeqLen { get; init; }
    public double NormEps { get; init; } = 1e-5;
    public double RopeTheta { get; init; } = 10000.0;
    /// <summary>The output classifier shares tok_embeddings.weight (no output.weight tensor).</summary>
    public bool SharedClassifier { get; init; }

    /// <summary>Dim / NHeads (0 while NHeads is not positive, so that an invalid header can still be printed).</summary>
    public int HeadDim => NHeads > 0 ? Dim / NHeads : 0;
    public int KvDim => NKvHeads * HeadDim;

    /// <summary>The model configuration (Meta interleaved RoPE: every reader converts to that order).</summary>
    public LlamaConfig ToLlamaConfig() => new LlamaConfig
    {
        Dim = Dim, HiddenDim = HiddenDim, NLayers = NLayers, NHeads = NHeads, NKvHeads = NKvHeads,
        VocabSize = VocabSize, SeqLen = SeqLen, NormEps = NormEps, RopeTheta = RopeTheta, TiedEmbeddings = SharedClassifier,
    }.Validate();

    /// <summary>Throws a <see cref="WeightFormatException"/> naming <paramref name="path"/> when the numbers are inconsistent.</summary>
    public LlamaFileConfig Validate(string path)
    {
        void Require(bool ok, string message)
        {
            if (!ok) throw new WeightFormatException(path, null, $"invalid model header: {message} ({this})");
        }
        Require(Dim > 0 && HiddenDim > 0 && NLayers > 0 && VocabSize > 0 && SeqLen > 0, "sizes must be positive");
        Require(NHeads > 0 && Dim % NHeads == 0, $"dim {Dim} must be a multiple of n_heads {NHeads}");
        Require(NKvHeads > 0 && NHeads % NKvHeads == 0, $"n_heads {NHeads} must be a multiple of n_kv_heads {NKvHeads}");
        Require(HeadDim % 2 == 0, $"head dim {HeadDim} must be even");
        Require(NormEps > 0 && double.IsFinite(NormEps), "norm eps must be positive");
        Require(RopeTheta > 0 && double.IsFinite(RopeTheta), "rope theta must be positive");
        return this;
    }

    /// <summary>Number of tensors a model of this configuration has (<see cref="LlamaTensorNames.Expected"/>).</summary>
    public long TensorCount() => 2 + 9L * NLayers + (SharedClassifier ? 0 : 1);

    /// <summary>Number of parameters the configuration implies, in double so that absurd headers cannot overflow.</summary>
    public double ParameterCount()
    {
        double dim = Dim, kv = (double)NKvHeads * HeadDim;
        double perLayer = 2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * (double)HiddenDim * dim;
        return (SharedClassifier ? 1 : 2) * (double)VocabSize * dim + NLayers * perLayer + dim;
    }

    /// <summary>Throws a <see cref="WeightFormatException"/> naming <paramref name="path"/> when the file, which holds
    /// <paramref name="tensorCount"/> tensors (0: a vocabulary-only file, not checked) in <paramref name="bytes"/> bytes,
    /// cannot hold a model of this configuration: more layers than tensors, or more parameters than the bytes at
    /// <paramref name="minBytesPerParameter"/> each. Checked before anything is allocated per layer.</summary>
    public LlamaFileConfig CheckFits(string path, long tensorCount, long bytes, double minBytesPerParameter)
    {
        if (tensorCount == 0) return this;
        if (NLayers > tensorCount)
            throw new WeightFormatException(path, null,
                $"the configuration has {NLayers} layers ({TensorCount()} tensors), the file holds only {tensorCount} tensors");
        double needed = ParameterCount() * minBytesPerParameter;
        if (needed > bytes)
            throw new WeightFormatException(path, null,
                $"the configuration ({this}) needs at least {needed:G4} bytes of weights, the file holds {bytes}");
        return this;
    }
}
