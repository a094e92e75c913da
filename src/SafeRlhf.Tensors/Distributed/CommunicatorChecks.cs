namespace SafeRlhf.Tensors.Distributed;

/// <summary>Argument checks every communicator shares, so that a mistake fails the same way on one rank as on many.</summary>
public static class CommunicatorChecks
{
    /// <summary>Sums are defined for float, double and long.</summary>
    public static void Summable<T>() where T : unmanaged
    {
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double) && typeof(T) != typeof(long))
            throw new NotSupportedException($"collective sums are defined for float, double and long, not {typeof(T).Name}");
    }

    /// <summary><paramref name="many"/> must be <paramref name="worldSize"/> × <paramref name="one"/>.</summary>
    public static void Sizes(int one, int many, int worldSize, string op)
    {
        if ((long)one * worldSize != many)
            throw new ArgumentException($"{op}: the per-rank buffer has {one} elements, so the whole one needs {(long)one * worldSize} for {worldSize} rank(s), not {many}");
    }

    /// <summary>A tensor reduced in place must be contiguous F32 or F64.</summary>
    public static void Reducible(Tensor t)
    {
        if (!t.IsContiguous) throw new TensorShapeException($"all-reduce of {t}: the tensor must be contiguous");
        if (t.DType is not (DType.F32 or DType.F64)) throw new TensorDTypeException($"all-reduce of {t}: only F32 and F64 tensors can be summed");
    }
}
