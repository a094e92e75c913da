using SafeRlhf.Tensors;

namespace SafeRlhf.Llama;

/// <summary>How a KV cache stores keys and values. <see cref="F32"/> (the default) stores them in the model's compute
/// type (fp32, or fp64 for an fp64 model), exactly as computed. <see cref="BF16"/> rounds each key and value to
/// bfloat16 (round to nearest even, a relative error of at most 2⁻⁸) when it is written into the cache, halving the
/// cache's memory and its reads per decode token; attention widens them to fp32 and accumulates in fp32. BF16 serves
/// generation only (rollouts, generate, bench-model), never a recorded gradient; a backend without BF16 attention
/// throws a <see cref="BackendNotSupportedException"/> naming the option.</summary>
public enum KvCacheType
{
    F32,
    BF16,
}

/// <summary>Names and parsing of <see cref="KvCacheType"/> (the `--kv-cache` option and the 'kv_cache' config key).</summary>
public static class KvCacheTypes
{
    /// <summary>The accepted names: f32, bf16.</summary>
    public static readonly string[] Names = ["f32", "bf16"];

    /// <summary>The type named <paramref name="text"/> (f32 or bf16, any case); throws <see cref="ArgumentException"/>
    /// naming <paramref name="where"/> otherwise.</summary>
    public static KvCacheType Parse(string? text, string where) => text?.Trim().ToLowerInvariant() switch
    {
        "f32" => KvCacheType.F32,
        "bf16" => KvCacheType.BF16,
        _ => throw new ArgumentException($"{where}: unknown KV cache type '{text}' (valid: {string.Join(", ", Names)})"),
    };

    /// <summary>The lower-case name of <paramref name="type"/>.</summary>
    public static string Name(this KvCacheType type) => type == KvCacheType.BF16 ? "bf16" : "f32";

    /// <summary>The element type of a cache of <paramref name="type"/> for a model computing in <paramref name="compute"/>.</summary>
    public static DType Storage(this KvCacheType type, DType compute) => type == KvCacheType.BF16 ? DType.BF16 : compute;
}
