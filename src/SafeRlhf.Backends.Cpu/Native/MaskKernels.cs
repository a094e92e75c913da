using System.Numerics;
using System.Runtime.InteropServices;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Cpu.Native;

/// <summary>The F32 elementwise kernels that <see cref="System.Numerics.Tensors.TensorPrimitives"/> has no call for
/// (comparisons, selects, masked derivatives), written once on <see cref="Vector{T}"/> with a scalar tail.
/// <see cref="Reference.ReferenceBackend"/> holds the naive double versions they are tested against.</summary>
internal static class MaskKernels
{
    /// <summary>c = a ∘ b ? 1 : 0 for a comparison op.</summary>
    public static void Compare(BinaryOp op, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c)
    {
        var va = MemoryMarshal.Cast<float, Vector<float>>(a);
        var vb = MemoryMarshal.Cast<float, Vector<float>>(b);
        var vc = MemoryMarshal.Cast<float, Vector<float>>(c);
        for (int i = 0; i < vc.Length; i++)
        {
            var mask = op switch
            {
                BinaryOp.Less => Vector.LessThan(va[i], vb[i]),
                BinaryOp.LessEqual => Vector.LessThanOrEqual(va[i], vb[i]),
                BinaryOp.Greater => Vector.GreaterThan(va[i], vb[i]),
                BinaryOp.GreaterEqual => Vector.GreaterThanOrEqual(va[i], vb[i]),
                _ => Vector.Equals(va[i], vb[i]),
            };
            vc[i] = Vector.ConditionalSelect(mask, Vector<float>.One, Vector<float>.Zero);
        }
        for (int i = vc.Length * Vector<float>.Count; i < c.Length; i++)
        {
            bool hit = op switch
            {
                BinaryOp.Less => a[i] < b[i],
                BinaryOp.LessEqual => a[i] <= b[i],
                BinaryOp.Greater => a[i] > b[i],
                BinaryOp.GreaterEqual => a[i] >= b[i],
                _ => a[i] == b[i],
            };
            c[i] = hit ? 1f : 0f;
        }
    }

    /// <summary>y = cond ≠ 0 ? a : b.</summary>
    public static void Select(ReadOnlySpan<float> cond, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        var vm = MemoryMarshal.Cast<float, Vector<float>>(cond);
        var va = MemoryMarshal.Cast<float, Vector<float>>(a);
        var vb = MemoryMarshal.Cast<float, Vector<float>>(b);
        var vy = MemoryMarshal.Cast<float, Vector<float>>(y);
        for (int i = 0; i < vy.Length; i++)
            vy[i] = Vector.ConditionalSelect(Vector.Equals(vm[i], Vector<float>.Zero), vb[i], va[i]);
        for (int i = vy.Length * Vector<float>.Count; i < y.Length; i++) y[i] = cond[i] != 0 ? a[i] : b[i];
    }

    /// <summary>dx = dy · sign(x) (sign(0) = 0), the derivative of Abs.</summary>
    public static void SignTimes(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx)
    {
        var vx = MemoryMarshal.Cast<float, Vector<float>>(x);
        var vd = MemoryMarshal.Cast<float, Vector<float>>(dy);
        var vo = MemoryMarshal.Cast<float, Vector<float>>(dx);
        for (int i = 0; i < vo.Length; i++)
        {
            var sign = Vector.ConditionalSelect(Vector.GreaterThan(vx[i], Vector<float>.Zero), Vector<float>.One,
                Vector.ConditionalSelect(Vector.LessThan(vx[i], Vector<float>.Zero), -Vector<float>.One, Vector<float>.Zero));
            vo[i] = vd[i] * sign;
        }
        for (int i = vo.Length * Vector<float>.Count; i < dx.Length; i++) dx[i] = dy[i] * MathF.Sign(x[i]);
    }

    /// <summary>dx = lo ≤ x ≤ hi ? dy : 0, the derivative of Clamp.</summary>
    public static void InRangeTimes(ReadOnlySpan<float> x, float lo, float hi, ReadOnlySpan<float> dy, Span<float> dx)
    {
        var vx = MemoryMarshal.Cast<float, Vector<float>>(x);
        var vd = MemoryMarshal.Cast<float, Vector<float>>(dy);
        var vo = MemoryMarshal.Cast<float, Vector<float>>(dx);
        var vlo = new Vector<float>(lo);
        var vhi = new Vector<float>(hi);
        for (int i = 0; i < vo.Length; i++)
        {
            var inside = Vector.BitwiseAnd(Vector.GreaterThanOrEqual(vx[i], vlo), Vector.LessThanOrEqual(vx[i], vhi));
            vo[i] = Vector.ConditionalSelect(inside, vd[i], Vector<float>.Zero);
        }
        for (int i = vo.Length * Vector<float>.Count; i < dx.Length; i++) dx[i] = x[i] >= lo && x[i] <= hi ? dy[i] : 0f;
    }
}
