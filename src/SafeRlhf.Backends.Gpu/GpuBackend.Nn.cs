using SafeRlhf.Kernels;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Gpu;

// Fused neural-network ops, each forward next to its backward.
public sealed partial class GpuBackend
{
    private static int Rows(Tensor t, int cols) => cols == 0 ? 0 : checked((int)(t.Numel / cols));

    // ---- softmax ----

    public void Softmax(Tensor x, Tensor y, bool log)
    {
        RequireSameDims("Softmax", x, y);
        if (x.Numel == 0) return;
        int cols = x.Dim(-1), rows = Rows(x, cols);
        using var sx = In(x);
        using var sy = Out(y);
        _kernels.SoftmaxForward.Value(PerRow(rows, cols, WarpSize), sx.F32, sy.F32, new RowParams(rows, cols, 0f, log ? 1 : 0));
    }

    public void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx, bool log)
    {
        RequireSameDims("SoftmaxBackward", y, dy);
        RequireSameDims("SoftmaxBackward", y, dx);
        if (y.Numel == 0) return;
        int cols = y.Dim(-1), rows = Rows(y, cols);
        using var sy = In(y);
        using var sdy = In(dy);
        using var sdx = Out(dx);
        _kernels.SoftmaxBackward.Value(PerRow(rows, cols, WarpSize), sy.F32, sdy.F32, sdx.F32, new RowParams(rows, cols, 0f, log ? 1 : 0));
    }

    // ---- gather / scatter-add ----

    private static GatherParams GatherLayout(Tensor x, Tensor index, Tensor y, int axis, string op)
    {
        if (x.Rank != index.Rank) throw new TensorShapeException($"{op}: {x.Shape} and index {index.Shape} differ in rank");
        RequireSameDims(op, index, y);
        int a = x.Shape.NormalizeAxis(axis);
        var baseStrides = x.Shape.StridesArray();
        long axisStride = baseStrides[a];
        baseStrides[a] = 0;
        return new GatherParams(index.Numel, x.Dim(a), axisStride, Code(x.DType), Code(y.DType),
            Layouts.Of(x.Offset, index.Shape.Dims, baseStrides), Layouts.Of(index), Layouts.Of(y));
    }

    public void Gather(Tensor x, Tensor index, Tensor y, int axis)
    {
        var p = GatherLayout(x, index, y, axis, "Gather");
        if (p.Count == 0) return;
        using var si = IndexView(index);
        var describe = BadIndex("Gather", x, axis);
        _kernels.Gather.Value(Linear(p.Count), Raw(x), si.View, Raw(y), ErrorSlot(describe), si.Adjust(p));
        CheckNow(describe);
    }

    public void ScatterAdd(Tensor dy, Tensor index, Tensor dx, int axis)
    {
        if (dx.DType != DType.F32)
        {
            // atomics need fp32: accumulate into an fp32 copy, then write it back
            using var temp = Tensor.Uninitialized(dx.Device, DType.F32, dx.Shape.ToArray());
            Copy(dx, temp);
            ScatterAdd(dy, index, temp, axis);
            Copy(temp, dx);
            return;
        }
        var p = GatherLayout(dx, index, dy, axis, "ScatterAdd");
        if (p.Count == 0) return;
        using var si = IndexView(index);
        var describe = BadIndex("ScatterAdd", dx, axis);
        _kernels.ScatterAdd.Value(Linear(p.Count), Raw(dy), si.View, Raw(dx).Cast<float>(), ErrorSlot(describe), si.Adjust(p));
        CheckNow(describe);
    }

    /// <summary>The index tensor as an I32 view: in place when I32 (any strides), else staged contiguous.</summary>
    private sealed class IndexStage : IDisposable
    {
        private readonly Staged? _staged;

        public IndexStage(GpuBackend backend, Tensor index)
        {
            if (index.DType == DType.I32) View = backend.Raw(index).Cast<int>();
            else
            {
                _staged = backend.Index(index);
                View = _staged.I32;
            }
        }

        public ILGPU.ArrayView<int> View { get; }

        /// <summary>Re-points the index layout at the staged copy when there is one.</summary>
        public GatherParams Adjust(GatherParams p) => _staged is null ? p
            : new GatherParams(p.Count, p.Extent, p.AxisStride, p.XType, p.YType, p.XBase,
                new StridedLayout(0, true, ReadOnlySpan<int>.Empty, ReadOnlySpan<long>.Empty), p.Y);

        public void Dispose() => _staged?.Dispose();
    }

    private IndexStage IndexView(Tensor index) => new(this, index);

    /// <summary>The message for a bad index flagged by Gather/ScatterAdd (shape captured now, read later).</summary>
    private static Func<int, int, string> BadIndex(string op, Tensor x, int axis)
    {
        var shape = x.Shape.ToString();
        int extent = x.Dim(axis);
        return (_, value) => $"{op}: index {value} out of range [0, {extent}) on axis {axis} of {shape}";
    }

    // ---- RMSNorm ----

    public void RmsNorm(Tensor x, Tensor w, Tensor y, Tensor rstd, double eps)
    {
        RequireSameDims("RmsNorm", x, y);
        int cols = w.Numel == 0 ? 0 : (int)w.Numel;
        if (x.Dim(-1) != cols) throw new TensorShapeException($"RmsNorm: x {x.Shape} vs w {w.Shape}");
        int rows = Rows(x, cols);
        if (rows == 0) return;
        using var sx = In(x);
        using var sw = In(w);
        using var sy = Out(y);
        using var sr = Out(rstd);
        _kernels.RmsNormForward.Value(PerRow(rows, cols, WarpSize), sx.F32, sw.F32, sy.F32, sr.F32, new RowParams(rows, cols, (float)eps));
    }

    public void RmsNormBackward(Tensor x, Tensor w, Tensor rstd, Tensor dy, Tensor dx, Tensor dw)
    {
        RequireSameDims("RmsNormBackward", x, dy);
        RequireSameDims("RmsNormBackward", x, dx);
        int cols = (int)w.Numel;
        int rows = Rows(x, cols);
        if (rows == 0) return;
        using var sx = In(x);
        using var sw = In(w);
        using var sr = In(rstd);
        using var sdy = In(dy);
        using var sdx = Out(dx);
        using var sdw = InOut(dw);
        var p = new RowParams(rows, cols);
        _kernels.RmsNormBackwardInput.Value(PerRow(rows, cols, WarpSize), sx.F32, sw.F32, sr.F32, sdy.F32, sdx.F32, p);
        _kernels.RmsNormBackwardWeight.Value(Linear(cols), sx.F32, sr.F32, sdy.F32, sdw.F32, p);
    }

    // ---- RoPE ----

    public void Rope(Tensor x, Tensor positions, Tensor y, double theta, RopeStyle style, bool inverse)
    {
        RequireSameDims("Rope", x, y);
        if (x.Rank != 4) throw new TensorShapeException($"Rope: x {x.Shape} must be [B, T, H, D]");
        int b = x.Dim(0), t = x.Dim(1), h = x.Dim(2), d = x.Dim(3);
        if (d % 2 != 0) throw new TensorShapeException($"Rope: head dim {d} is odd");
        if (positions.Numel != (long)b * t) throw new TensorShapeException($"Rope: positions {positions.Shape} vs x {x.Shape}");
        if (x.Numel == 0) return;
        using var sx = In(x);
        using var sp = Index(positions);
        using var sy = Out(y);
        var p = new RopeParams(b, t, h, d, style == RopeStyle.Interleaved ? 0 : 1, inverse, theta);
        _kernels.Rope.Value(Linear(x.Numel / 2), sx.F32, sp.I32, sy.F32, p);
    }

    // ---- SwiGLU ----

    public void SwiGlu(Tensor gate, Tensor up, Tensor y)
    {
        RequireSameDims("SwiGlu", gate, up);
        RequireSameDims("SwiGlu", gate, y);
        if (y.Numel == 0) return;
        using var sg = In(gate);
        using var su = In(up);
        using var sy = Out(y);
        _kernels.SwiGluForward.Value(Linear(y.Numel), sg.F32, su.F32, sy.F32, y.Numel);
    }

    public void SwiGluBackward(Tensor gate, Tensor up, Tensor dy, Tensor dGate, Tensor dUp)
    {
        RequireSameDims("SwiGluBackward", gate, up);
        RequireSameDims("SwiGluBackward", gate, dy);
        if (gate.Numel == 0) return;
        using var sg = In(gate);
        using var su = In(up);
        using var sdy = In(dy);
        using var sdg = Out(dGate);
        using var sdu = Out(dUp);
        _kernels.SwiGluBackward.Value(Linear(gate.Numel), sg.F32, su.F32, sdy.F32, sdg.F32, sdu.F32, gate.Numel);
    }

    // ---- cross-entropy ----

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor losses, Tensor lse, int ignoreIndex)
    {
        int n = logits.Dim(0), v = logits.Dim(1);
        if (targets.Numel != n) throw new TensorShapeException($"CrossEntropy: logits {logits.Shape} vs targets {targets.Shape}");
        if (n == 0) return;
        using var sx = In(logits);
        using var st = Index(targets);
        using var sl = Out(losses);
        using var slse = Out(lse);
        // the target is read back only when the check fails (immediately, or at the deferred check)
        var targetsRef = DeferErrorChecks ? null : targets;
        Func<int, int, string> describe = (flag, _) => targetsRef is null
            ? $"CrossEntropy: a target out of range [0, {v}) at row {flag - 1} (logits [{n}, {v}])"
            : $"CrossEntropy: target {targetsRef.ToArray<int>()[flag - 1]} out of range [0, {v}) at row {flag - 1}";
        _kernels.CrossEntropyForward.Value(PerRow(n, v, 2 * WarpSize), sx.F32, st.I32, sl.F32, slse.F32, ErrorSlot(describe),
            new CrossEntropyParams(n, v, ignoreIndex));
        CheckNow(describe);
    }

    public void CrossEntropyBackward(Tensor logits, Tensor targets, Tensor lse, Tensor dLosses, Tensor dLogits, int ignoreIndex)
    {
        RequireSameDims("CrossEntropyBackward", logits, dLogits);
        int n = logits.Dim(0), v = logits.Dim(1);
        if (logits.Numel == 0) return;
        using var sx = In(logits);
        using var st = Index(targets);
        using var slse = In(lse);
        using var sdl = In(dLosses);
        using var sdx = Out(dLogits);
        _kernels.CrossEntropyBackward.Value(Linear(logits.Numel), sx.F32, st.I32, slse.F32, sdl.F32, sdx.F32,
            new CrossEntropyParams(n, v, ignoreIndex));
    }
}
