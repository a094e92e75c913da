using SafeRlhf.Llama.Loading;
using SafeRlhf.Nn;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Llama.Export;

/// <summary>One parameter of a model to export, under its Meta name: its values as F32 on demand, or, for a matrix
/// held quantized with nothing merged into it, its blocks as held.</summary>
/// <param name="Name">Meta name (tok_embeddings.weight, layers.N.attention.wq.weight, …).</param>
/// <param name="Dims">Row-major dims ([out, in] for matrices).</param>
/// <param name="IsLinear">A linear layer's weight (what in-memory quantization applies to).</param>
/// <param name="HeldType">The dtype the model holds it in.</param>
internal sealed record ExportTensor(string Name, int[] Dims, bool IsLinear, DType HeldType, Func<float[]> Values, Func<byte[]>? Blocks)
{
    /// <summary>Every parameter of <paramref name="model"/> in file order. A linear layer with a LoRA adapter is merged
    /// (W + scale·B·A, in double, rounded once to F32) when <paramref name="mergeLora"/>; otherwise a model with
    /// adapters throws <see cref="InvalidOperationException"/>.</summary>
    public static IReadOnlyList<ExportTensor> Of(LlamaModel model, bool mergeLora)
    {
        var byName = model.NamedParameters().ToDictionary(p => p.Name, p => p.Tensor, StringComparer.Ordinal);
        var linears = new Dictionary<Tensor, Linear>(ReferenceEqualityComparer.Instance);
        foreach (var layer in model.Layers)
            foreach (var (_, linear) in layer.NamedLinears) linears[linear.Weight] = linear;
        if (model.Output is { } output) linears[output.Weight] = output;
        int adapters = linears.Values.Count(l => l.Lora is not null);
        if (adapters > 0 && !mergeLora)
            throw new InvalidOperationException($"the model holds LoRA adapters on {adapters} layers; neither a Hugging Face folder nor GGUF " +
                                                "carries adapters: pass --merge-lora to fold W + (alpha/r)·B·A into the base");
        var result = new List<ExportTensor>();
        foreach (var (name, dims, isLinear) in LlamaLoader.Parameters(model.Config))
        {
            var t = byName[name];
            var lora = linears.TryGetValue(t, out var l) ? l.Lora : null;
            Func<byte[]>? blocks = t.DType.IsQuantized() && lora is null ? () => t.ToBytes() : null;
            result.Add(new ExportTensor(name, dims, isLinear, t.DType, () => Merged(t, lora), blocks));
        }
        return result;
    }

    private static float[] Merged(Tensor weight, LoraAdapter? lora)
    {
        using var suspend = TensorScope.Suspend();
        using var noGrad = GradMode.NoGrad();
        float[] w;
        if (weight.DType.IsQuantized())
        {
            using var dense = Ops.Dequantize(weight);
            w = dense.ToFloatArray();
        }
        else w = weight.ToFloatArray();
        if (lora is null) return w;
        // W [out, in] + s · B [out, r] · A [r, in]
        double[] a = lora.A.ToDoubleArray(), b = lora.B.ToDoubleArray();
        int rows = weight.Dim(0), cols = weight.Dim(1), rank = lora.A.Dim(0);
        double s = lora.ScaleFactor;
        var merged = new float[w.Length];
        var row = new double[cols];
        for (int i = 0; i < rows; i++)
        {
            Array.Clear(row);
            for (int k = 0; k < rank; k++)
            {
                double bik = b[i * rank + k];
                for (int j = 0; j < cols; j++) row[j] += bik * a[k * cols + j];
            }
            for (int j = 0; j < cols; j++) merged[i * cols + j] = (float)(w[i * cols + j] + s * row[j]);
        }
        return merged;
    }
}
