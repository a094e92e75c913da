using System.Text;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Llama.Init;

/// <summary>Deterministic random LLaMA weights, as <see cref="LlamaModel.Create"/> draws them (N(0, 0.02²) matrices
/// and embeddings, norm weights 1), but with one generator per tensor seeded from the model seed and the tensor's
/// Meta name: a tensor's values depend only on (seed, name, shape), not on which tensors come before it, so a file
/// can be written one tensor at a time, in any order, and still equal the in-memory model.</summary>
public static class RandomWeights
{
    /// <summary>Standard deviation of the matrices and the embedding.</summary>
    public const double Std = 0.02;

    /// <summary>The generator seed of one tensor: FNV-1a of its UTF-8 name mixed with the model seed.</summary>
    public static ulong TensorSeed(ulong seed, string name)
    {
        ulong hash = 0xCBF29CE484222325UL;
        foreach (byte b in Encoding.UTF8.GetBytes(name))
        {
            hash ^= b;
            hash *= 0x100000001B3UL;
        }
        return hash ^ (seed * 0x9E3779B97F4A7C15UL);
    }

    /// <summary>The values of one tensor as a stream that fills buffers in row-major order; vectors (the norm
    /// weights) are all ones.</summary>
    public static RandomTensorValues Values(ulong seed, string name, int[] dims) =>
        new(dims.Length == 1 ? null : new Rng(TensorSeed(seed, name)));

    /// <summary>All values of one tensor at once.</summary>
    public static float[] Generate(ulong seed, string name, int[] dims)
    {
        var values = new float[checked((int)Formats.RawTensor.Count(dims))];
        Values(seed, name, dims).Fill(values);
        return values;
    }

    /// <summary>The F32 model with these weights on <paramref name="device"/> (every tensor in memory at once: use
    /// <see cref="RandomCheckpoint.Write"/> for models that do not fit).</summary>
    public static LlamaModel CreateModel(LlamaConfig config, Device device, ulong seed)
    {
        config.Validate();
        using var suspend = TensorScope.Suspend();
        using var noGrad = GradMode.NoGrad();
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var (name, dims, _) in LlamaLoader.Parameters(config))
                tensors[name] = Tensor.FromArray(device, Generate(seed, name, dims), dims);
            return LlamaModel.FromTensors(config, device, tensors);
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
    }
}

/// <summary>The values of one random tensor, produced in row-major order by successive <see cref="Fill"/> calls.</summary>
public sealed class RandomTensorValues
{
    private readonly Rng? _rng;

    internal RandomTensorValues(Rng? rng) => _rng = rng;

    /// <summary>Fills <paramref name="destination"/> with the next values: (float)N(0, 0.02²) samples, or ones for a
    /// norm weight.</summary>
    public void Fill(Span<float> destination)
    {
        if (_rng is null)
        {
            destination.Fill(1f);
            return;
        }
        for (int i = 0; i < destination.Length; i++) destination[i] = (float)_rng.Normal(0, RandomWeights.Std);
    }
}
