namespace SafeRlhf.Backends.Cpu;

/// <summary>bf16 ↔ fp32 on the host, shared by the CPU backends.</summary>
internal static class Bf16
{
    /// <summary>fp32 → bf16 with round-to-nearest-even (NaN kept quiet).</summary>
    public static ushort FromFloat(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    /// <summary>bf16 → fp32 (exact).</summary>
    public static float ToFloat(ushort value) => BitConverter.Int32BitsToSingle(value << 16);
}
