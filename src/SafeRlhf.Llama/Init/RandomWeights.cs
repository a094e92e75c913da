using System.Text;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Llama.Init;

/// <summary>Deterministic random LLaMA weights with the distribution of <see cref="LlamaModel.Create"/> (N(0, 0.02²)
/// matrices and embeddings, norm weights 1), but seeded per tensor from the model seed and the tensor's Meta name: a
/// tensor's values depend only on (seed, name, shape), not on which tensors come before it, so a file can be written
/// one tensor at a time, in any order, and still equal the in-memory model.</summary>
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
        new(dims.Length == 1 ? null : TensorSeed(seed, name));

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

/// <summary>The values of one random tensor, produced in row-major order by successive <see cref="Fill"/> calls.
/// The tensor is cut into segments of <see cref="SegmentElements"/> values, each drawn from its own generator
/// (seeded from the tensor seed and the segment index, Box–Muller pairs), so that segments are generated in
/// parallel and the values do not depend on the number of threads or on how the calls cut the tensor.</summary>
public sealed class RandomTensorValues
{
    /// <summary>Values per independently seeded segment.</summary>
    public const int SegmentElements = 1 << 15;

    private readonly ulong? _seed;
    private long _position;

    internal RandomTensorValues(ulong? seed) => _seed = seed;

    /// <summary>Fills <paramref name="destination"/> with the next values: (float)N(0, 0.02²) samples, or ones for a
    /// norm weight.</summary>
    public void Fill(Memory<float> destination)
    {
        long start = _position;
        _position += destination.Length;
        if (_seed is not { } seed)
        {
            destination.Span.Fill(1f);
            return;
        }
        var pieces = new List<(long Segment, int Offset, int At, int Count)>();
        for (int at = 0; at < destination.Length;)
        {
            long index = start + at;
            int offset = (int)(index % SegmentElements);
            int count = Math.Min(SegmentElements - offset, destination.Length - at);
            pieces.Add((index / SegmentElements, offset, at, count));
            at += count;
        }
        if (pieces.Count == 1)
            FillSegment(seed, pieces[0].Segment, pieces[0].Offset, destination.Span);
        else
            Parallel.For(0, pieces.Count, i =>
            {
                var (segment, offset, at, count) = pieces[i];
                FillSegment(seed, segment, offset, destination.Span.Slice(at, count));
            });
    }

    /// <summary>Values [offset, offset + destination.Length) of one segment.</summary>
    private static void FillSegment(ulong seed, long segment, int offset, Span<float> destination)
    {
        var rng = new Rng(seed ^ ((ulong)(segment + 1) * 0xD1B54A32D192ED03UL));
        double z0 = 0, z1 = 0;
        int end = offset + destination.Length;
        for (int i = 0; i < end; i++)
        {
            if ((i & 1) == 0)
            {
                double radius = Math.Sqrt(-2.0 * Math.Log(1.0 - rng.NextDouble()));
                (double sin, double cos) = Math.SinCos(2 * Math.PI * rng.NextDouble());
                (z0, z1) = (radius * cos, radius * sin);
            }
            if (i >= offset) destination[i - offset] = (float)(RandomWeights.Std * ((i & 1) == 0 ? z0 : z1));
        }
    }
}
