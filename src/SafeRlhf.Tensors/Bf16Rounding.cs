namespace SafeRlhf.Tensors;

/// <summary>Error bounds of computing with bfloat16-rounded operands, derived from BF16's rounding: BF16 keeps 8
/// significant bits, so rounding to nearest even changes a finite value x (in BF16's normal range) to x(1 + δ) with
/// |δ| ≤ u = 2⁻⁸. fp32 accumulation of n terms adds at most γₙ = n·2⁻²⁴ / (1 − n·2⁻²⁴) times the sum of the terms'
/// magnitudes (the standard bound for recursive summation in any order). The selftest and the tests compare a BF16
/// path with an fp32 oracle under these bounds instead of a tolerance picked by hand.</summary>
public static class Bf16Rounding
{
    /// <summary>u = 2⁻⁸: the largest relative change of rounding to BF16 (round to nearest even).</summary>
    public const double UnitRoundoff = 1.0 / 256;

    /// <summary>2⁻²⁴: the unit roundoff of fp32.</summary>
    public const double F32UnitRoundoff = 1.0 / 16777216;

    /// <summary>γₙ for fp32: the relative bound of summing <paramref name="n"/> terms in fp32.</summary>
    public static double F32SumFactor(int n)
    {
        double nu = n * F32UnitRoundoff;
        if (nu >= 1) throw new ArgumentOutOfRangeException(nameof(n), n, "fp32 summation bound needs n·2⁻²⁴ < 1");
        return nu / (1 - nu);
    }

    /// <summary>The largest |ỹ − y| for a dot product of length <paramref name="k"/> whose two operands are each rounded
    /// to BF16 and whose products are summed in fp32 (ỹ), against the same dot product summed in fp32 from the unrounded
    /// operands (y), where <paramref name="absDot"/> = Σ|xᵢ||wᵢ|. Each product changes by at most (2u + u²)|xᵢwᵢ|; each
    /// side's fp32 products and summation add at most γₖ₊₁ times its terms' magnitudes (≤ (1 + u)²·absDot for the rounded
    /// side, whose BF16 × BF16 products are exact in fp32).</summary>
    public static double DotBound(double absDot, int k)
    {
        const double u = UnitRoundoff;
        double g = F32SumFactor(k + 1);
        return absDot * (2 * u + u * u + g * (1 + u) * (1 + u) + g);
    }

    /// <summary>The largest change of an attention output element when the keys and values are rounded to BF16 (a BF16
    /// KV cache), before fp32 accumulation error. <paramref name="scoreChange"/> bounds the change of every visible
    /// scaled score, E = scale·max over keys of Σᵢ|qᵢ||kᵢ|·u; <paramref name="maxAbsValue"/> is the largest |v| of the
    /// element's column over the visible keys. A softmax whose scores move by at most E changes every probability by at
    /// most a factor e^{±2E}, so |õ − o| ≤ Σ|p̃ⱼ − pⱼ||ṽⱼ| + Σpⱼ|ṽⱼ − vⱼ| ≤ (e^{2E} − 1)(1 + u)·max|v| + u·max|v|.</summary>
    public static double AttentionOutputBound(double scoreChange, double maxAbsValue)
    {
        const double u = UnitRoundoff;
        return (Math.Exp(2 * scoreChange) - 1) * (1 + u) * maxAbsValue + u * maxAbsValue;
    }
}
