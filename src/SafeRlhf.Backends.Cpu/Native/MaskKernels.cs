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

    /// <summary>t = sign(x) (0 at 0), the derivative of Abs.</summary>
    public static void Sign(ReadOnlySpan<double> x, Span<double> t)
    {
        var vx = MemoryMarshal.Cast<double, Vector<double>>(x);
        var vt = MemoryMarshal.Cast<double, Vector<double>>(t);
        for (int i = 0; i < vt.Length; i++)
            vt[i] = Vector.ConditionalSelect(Vector.GreaterThan(vx[i], Vector<double>.Zero), Vector<double>.One,
                Vector.ConditionalSelect(Vector.LessThan(vx[i], Vector<double>.Zero), -Vector<double>.One, Vector<double>.Zero));
        for (int i = vt.Length * Vector<double>.Count; i < t.Length; i++) t[i] = Math.Sign(x[i]);
    }

    /// <summary>t = lo ≤ x ≤ hi ? 1 : 0, the derivative of Clamp.</summary>
    public static void InRange(ReadOnlySpan<double> x, double lo, double hi, Span<double> t)
    {
        var vx = MemoryMarshal.Cast<double, Vector<double>>(x);
        var vt = MemoryMarshal.Cast<double, Vector<double>>(t);
        var vlo = new Vector<double>(lo);
        var vhi = new Vector<double>(hi);
        for (int i = 0; i < vt.Length; i++)
            vt[i] = Vector.ConditionalSelect(Vector.BitwiseAnd(Vector.GreaterThanOrEqual(vx[i], vlo), Vector.LessThanOrEqual(vx[i], vhi)),
                Vector<double>.One, Vector<double>.Zero);
        for (int i = vt.Length * Vector<double>.Count; i < t.Length; i++) t[i] = x[i] >= lo && x[i] <= hi ? 1 : 0;
    }
}
