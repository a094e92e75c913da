using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Tensors;

/// <summary>Differentiable tensor ops. Each op's file holds its forward and, beside it, its backward rule.
/// Backends compute; this layer checks shapes, allocates outputs and records the tape.</summary>
public static partial class Ops
{
    /// <summary>A zero-filled output, for ops that rely on the zeros: the accumulating ones (ScatterAdd, the dw of
    /// RmsNormBackward, MatMul with accumulate) and those that write only part of it (Narrow's backward). Outputs written
    /// in full are <see cref="Output"/>.</summary>
    internal static Tensor Zeros(Device device, DType dtype, params int[] dims) => Tensor.Zeros(device, dtype, dims);

    /// <summary>An output the backend op writes in full (every element, whatever the data): left uninitialized where
    /// the backend can skip the zeroing (<see cref="IUninitializedAllocator"/>), zeros elsewhere. Outputs that are
    /// accumulated into or written only in part stay <see cref="Zeros"/>.</summary>
    internal static Tensor Output(Device device, DType dtype, params int[] dims) => Tensor.Uninitialized(device, dtype, dims);

    /// <summary><see cref="Output"/> with t's device, dtype and dims (contiguous).</summary>
    internal static Tensor OutputLike(Tensor t) => Tensor.Uninitialized(t.Device, t.DType, t.Shape.ToArray());

    /// <summary>A zero-filled tensor with t's device, dtype and dims (contiguous).</summary>
    public static Tensor ZerosLike(Tensor t) => Tensor.Zeros(t.Device, t.DType, t.Shape.ToArray());

    public static Tensor OnesLike(Tensor t)
    {
        var o = ZerosLike(t);
        t.Backend.Fill(o, 1.0);
        return o;
    }

    public static Tensor Full(Device device, DType dtype, double value, params int[] dims)
    {
        var t = Tensor.Zeros(device, dtype, dims);
        device.Backend.Fill(t, value);
        return t;
    }

    internal static void CheckCompute(string op, Tensor t)
    {
        t.ThrowIfDisposed(op);
        if (!t.DType.IsCompute())
            throw new TensorDTypeException($"{op}: expects an F32 or F64 tensor, got {t.DType} {t.Shape}");
    }

    internal static void CheckSame(string op, Tensor a, Tensor b)
    {
        CheckCompute(op, a);
        CheckCompute(op, b);
        if (a.DType != b.DType)
            throw new TensorDTypeException($"{op}: dtype mismatch {a.DType} {a.Shape} vs {b.DType} {b.Shape}");
        if (a.Device != b.Device)
            throw new ArgumentException($"{op}: tensors on different devices ({a.Device.Name} and {b.Device.Name})");
    }

    internal static void CheckIndex(string op, Tensor index, Device device)
    {
        index.ThrowIfDisposed(op);
        if (index.DType != DType.I32)
            throw new TensorDTypeException($"{op}: index tensor must be I32, got {index.DType} {index.Shape}");
        if (index.Device != device)
            throw new ArgumentException($"{op}: index tensor on {index.Device.Name}, data on {device.Name}");
    }

    internal static void CheckRank(string op, Tensor t, int rank, string what)
    {
        if (t.Rank != rank)
            throw new TensorShapeException($"{op}: {what} must have rank {rank}, got {t.Shape}");
    }

    /// <summary>Disposes an op's temporaries (contiguous copies, statistics) once its output is recorded: those
    /// its backward rule reads live on in the tape, the others die now. Returns <paramref name="result"/>.</summary>
    internal static Tensor Finish(Tensor result, params ReadOnlySpan<Tensor?> temporaries)
    {
        foreach (var t in temporaries) t?.Dispose();
        return result;
    }

    /// <summary>Records an op; <paramref name="saved"/> lists every tensor whose data the backward rule reads.</summary>
    internal static Tensor Record(string op, Tensor output, Tensor[] inputs, Tensor[] saved, Func<Tensor, Tensor?[]> backward) =>
        Tape.Record(op, output, inputs, saved, backward);
}
