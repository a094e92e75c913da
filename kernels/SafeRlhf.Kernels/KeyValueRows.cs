using ILGPU;

namespace SafeRlhf.Kernels;

/// <summary>Where the attention forward and decode kernels read keys and values (element offsets from
/// <see cref="AttentionParams.KRow"/>): fp32, or BF16 (a BF16 KV cache) widened exactly to fp32 as each element is
/// loaded into shared memory, so that scores and outputs accumulate in fp32 either way. Implemented by structs, so
/// each kernel is compiled for one storage type with no per-element branch.</summary>
public interface IKeyValueRows
{
    float Key(long at);
    float Value(long at);
}

/// <summary>fp32 keys and values.</summary>
public readonly struct F32KeyValues : IKeyValueRows
{
    private readonly ArrayView<float> _k, _v;

    public F32KeyValues(ArrayView<float> k, ArrayView<float> v)
    {
        _k = k;
        _v = v;
    }

    public float Key(long at) => _k[at];
    public float Value(long at) => _v[at];
}

/// <summary>BF16 keys and values (bit patterns), widened to fp32 on load.</summary>
public readonly struct Bf16KeyValues : IKeyValueRows
{
    private readonly ArrayView<ushort> _k, _v;

    public Bf16KeyValues(ArrayView<ushort> k, ArrayView<ushort> v)
    {
        _k = k;
        _v = v;
    }

    public float Key(long at) => DeviceMath.BFloat16ToFloat(_k[at]);
    public float Value(long at) => DeviceMath.BFloat16ToFloat(_v[at]);
}
