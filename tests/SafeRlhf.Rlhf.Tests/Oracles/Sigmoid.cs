namespace SafeRlhf.Rlhf.Tests.Oracles;

/// <summary>The logistic function σ(x) = 1 / (1 + e^−x) and its logarithm, both stable for large |x|.</summary>
public static class Sigmoid
{
    /// <summary>σ(x).</summary>
    public static double Value(double x) =>
        x >= 0 ? 1.0 / (1.0 + double.Exp(-x)) : double.Exp(x) / (1.0 + double.Exp(x));

    /// <summary>log σ(x) = −log(1 + e^−x), computed without overflow: min(x, 0) − log(1 + e^−|x|).</summary>
    public static double Log(double x) => double.Min(x, 0.0) - double.LogP1(double.Exp(-double.Abs(x)));
}
