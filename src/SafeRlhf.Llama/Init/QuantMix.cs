using System.Text.RegularExpressions;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Tensors;

namespace SafeRlhf.Llama.Init;

/// <summary>llama.cpp's K-quant file presets as <c>llama-quantize</c> lays them out for a LLaMA model, so that a file of
/// that mix can be written here: the type of each tensor by its name and layer.</summary>
public enum QuantMix
{
    /// <summary>Q4_K_M: Q4_K matrices and token embedding; output Q6_K; attention value and feed-forward down
    /// projections Q6_K in the layers where llama.cpp spends more bits (the first and last eighth, every third
    /// between), Q4_K elsewhere.</summary>
    Q4_K_M,
    /// <summary>Q6_K: every matrix and the token embedding Q6_K.</summary>
    Q6_K,
}

/// <summary>Tensor types of a <see cref="QuantMix"/>.</summary>
public static partial class QuantMixes
{
    /// <summary>The stored type of the matrix <paramref name="name"/> (a Meta name; null for a tensor that stays F32,
    /// the norms) in a model of <paramref name="layers"/> layers. A matrix whose rows are not a multiple of 256 is
    /// stored as Q8_0 (rows a multiple of 32) or F32, as llama.cpp falls back to a 32-block type.</summary>
    public static DType? TypeOf(QuantMix mix, string name, int[] dims, int layers)
    {
        if (dims.Length != 2) return null;
        DType wanted = mix == QuantMix.Q6_K ? DType.Q6_K : Q4_K_M(name, layers);
        if (dims[1] % DTypeInfo.KQuantBlock == 0) return wanted;
        return dims[1] % DTypeInfo.QuantBlock == 0 ? DType.Q8_0 : DType.F32;
    }

    private static DType Q4_K_M(string name, int layers)
    {
        if (name == LlamaTensorNames.Output) return DType.Q6_K;
        var match = MoreBitsName().Match(name);
        if (match.Success && MoreBits(int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), layers))
            return DType.Q6_K;
        return DType.Q4_K;
    }

    /// <summary>llama.cpp's choice of layers that get more bits: the first and last eighth and every third layer between.</summary>
    public static bool MoreBits(int layer, int layers) =>
        layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;

    /// <summary>The llama.cpp file type number (general.file_type) of the mix.</summary>
    public static uint FileType(QuantMix mix) => mix == QuantMix.Q4_K_M ? 15u : 18u;

    [GeneratedRegex(@"^layers\.(\d+)\.(attention\.wv|feed_forward\.w2)\.weight$")]
    private static partial Regex MoreBitsName();
}
