using SafeRlhf.Tensors;

namespace SafeRlhf.Nn;

/// <summary>y = x·Wᵀ (+ b) (+ LoRA: (α/r)·x·Aᵀ·Bᵀ). W [out, in] is dense F32/F64 (trainable unless frozen),
/// or a frozen Q8_0/Q4_0/Q4_K/Q5_K/Q6_K/BF16 base weight; LoRA adapters A [r, in] (random init) and B [out, r] (zero init)
/// are trainable and can be switched off to recover the base layer (the reference policy).</summary>
public sealed class Linear : Module
{
    private Tensor _weight;

    public Linear(Tensor weight, Tensor? bias = null, bool trainable = true)
    {
        if (weight.Rank != 2) throw new TensorShapeException($"Linear: weight must be [out, in], got {weight.Shape}");
        _weight = Param("weight", weight, trainable);
        if (bias is not null)
        {
            if (bias.Rank != 1 || bias.Dim(0) != weight.Dim(0))
                throw new TensorShapeException($"Linear: bias {bias.Shape} must be [{weight.Dim(0)}]");
            Bias = Param("bias", bias, trainable);
        }
    }

    /// <summary>A new layer initialised N(0, std²) with zero bias.</summary>
    public static Linear Create(Device device, DType dtype, int inFeatures, int outFeatures, Rng rng, double std, bool bias = false) =>
        new(rng.NormalTensor(device, dtype, 0, std, outFeatures, inFeatures), bias ? Tensor.Zeros(device, dtype, outFeatures) : null);

    public Tensor Weight => _weight;
    public Tensor? Bias { get; }
    public int InFeatures => _weight.Dim(1);
    public int OutFeatures => _weight.Dim(0);
    public LoraAdapter? Lora { get; private set; }
    /// <summary>When false the LoRA delta is skipped (the frozen base layer).</summary>
    public bool LoraEnabled { get; set; } = true;

    /// <summary>x [.., in] → [.., out].</summary>
    public Tensor Forward(Tensor x)
    {
        Tensor y = _weight.DType switch
        {
            _ when _weight.DType.IsQuantized() => Ops.QuantizedMatMul(x, _weight),  // block types, interleaved or not
            DType.BF16 when x.DType == DType.F32 => Ops.QuantizedMatMul(x, _weight),
            DType.BF16 or DType.F16 => Ops.Linear(x, _weight.Cast(x.DType)),
            _ => Ops.Linear(x, _weight),
        };
        if (Bias is not null) y = y + Bias;
        if (Lora is not null && LoraEnabled) y = y + Lora.Forward(x);
        return y;
    }

    /// <summary>Freezes the base weight and adds trainable LoRA adapters of the given rank.</summary>
    public void AddLora(int rank, double alpha, Rng rng)
    {
        if (Lora is not null) throw new InvalidOperationException("Linear: LoRA adapters already added");
        _weight.RequiresGrad = false;
        if (Bias is not null) Bias.RequiresGrad = false;
        var dtype = _weight.DType.IsCompute() ? _weight.DType : DType.F32;
        Lora = Child("lora", new LoraAdapter(_weight.Device, dtype, InFeatures, OutFeatures, rank, alpha, rng));
    }

    /// <summary>Replaces the weight (same dims), e.g. with a quantized copy or loaded values.</summary>
    public void SetWeight(Tensor weight)
    {
        if (!weight.Shape.SameDims(_weight.Shape))
            throw new TensorShapeException($"Linear.SetWeight: {weight.Shape} does not match {_weight.Shape}");
        ReplaceParam("weight", weight);
        _weight = weight;
    }
}

/// <summary>Low-rank adapter: delta = (α/r)·x·Aᵀ·Bᵀ with A [r, in] ~ N(0, 1/r), B [out, r] = 0.</summary>
public sealed class LoraAdapter : Module
{
    public LoraAdapter(Device device, DType dtype, int inFeatures, int outFeatures, int rank, double alpha, Rng rng)
    {
        if (rank <= 0) throw new ArgumentOutOfRangeException(nameof(rank), "LoRA rank must be positive");
        A = Param("a", rng.NormalTensor(device, dtype, 0, 1.0 / Math.Sqrt(inFeatures), rank, inFeatures));
        B = Param("b", Tensor.Zeros(device, dtype, outFeatures, rank));
        ScaleFactor = alpha / rank;
    }

    public Tensor A { get; }
    public Tensor B { get; }
    public double ScaleFactor { get; }

    public Tensor Forward(Tensor x) => Ops.Linear(Ops.Linear(x, A), B).Scale(ScaleFactor);
}
