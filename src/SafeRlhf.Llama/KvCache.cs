using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Llama;

/// <summary>Keys and values of every layer for incremental decoding: [B, capacity, Hkv, D] per layer, in the model's compute
/// type or BF16 (<see cref="KvCacheType"/>; the copy into a BF16 cache rounds to nearest even).</summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor[] _keys;
    private readonly Tensor[] _values;

    public KvCache(Device device, LlamaConfig config, int batch, int capacity, DType dtype = DType.F32)
    {
        using var _ = TensorScope.Suspend();
        using var tag = MemoryTags.As(MemoryCategory.KvCache);
        _keys = new Tensor[config.NLayers];
        _values = new Tensor[config.NLayers];
        for (int l = 0; l < config.NLayers; l++)
        {
            _keys[l] = Tensor.Zeros(device, dtype, batch, capacity, config.NKvHeads, config.HeadDim);
            _values[l] = Tensor.Zeros(device, dtype, batch, capacity, config.NKvHeads, config.HeadDim);
        }
        Capacity = capacity;
    }

    public int Capacity { get; }
    /// <summary>Positions filled so far (the same for every layer once a forward pass completes).</summary>
    public int Length { get; private set; }
    private int _pending;

    /// <summary>Writes k, v [B, T, Hkv, D] of a layer after the cached ones; returns all keys and values so far.</summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        int t = k.Dim(1);
        if (Length + t > Capacity)
            throw new InvalidOperationException($"KV cache full: {Length} + {t} positions exceed capacity {Capacity}");
        using (GradMode.NoGrad())
        {
            using var kDst = _keys[layer].Narrow(1, Length, t);
            using var vDst = _values[layer].Narrow(1, Length, t);
            k.Backend.Copy(k, kDst);
            v.Backend.Copy(v, vDst);
        }
        _pending = t;
        return (_keys[layer].Narrow(1, 0, Length + t), _values[layer].Narrow(1, 0, Length + t));
    }

    /// <summary>Marks the positions appended by the last forward pass as filled.</summary>
    public void Commit()
    {
        Length += _pending;
        _pending = 0;
    }

    public void Dispose()
    {
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
    }
}
