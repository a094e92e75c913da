using ILGPU;
using ILGPU.Runtime;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Profiling;

namespace SafeRlhf.Backends.Gpu;

// Counting host waits, launches, memsets and transfers; deferred error-flag checks; the batched global norm.
public sealed partial class GpuBackend : IDeviceActivitySource, IBatchedSumOfSquares, IUninitializedAllocator
{
    /// <summary>Error-flag pairs one deferred check window can hold before the host must look at them.</summary>
    internal const int ErrorSlots = 64;

    private long _syncs, _memsets, _uploads, _readbacks;
    private readonly List<Func<int, int, string>?> _pendingChecks = new();

    public DeviceActivity Activity =>
        new(Interlocked.Read(ref _syncs), _kernels.Launches, Interlocked.Read(ref _memsets),
            Interlocked.Read(ref _uploads), Interlocked.Read(ref _readbacks));

    /// <summary>When true, ops that validate indices on the device (Gather, ScatterAdd, CrossEntropy) do not wait
    /// for their error flags: each writes its own flag slot, and the flags are read once at the next readback or
    /// <see cref="Synchronize"/> (the host waits there anyway), which throws for the first op that failed. When
    /// false (the default), each such op waits and throws at once.</summary>
    public bool DeferErrorChecks { get; set; }

    /// <summary>Sets <see cref="DeferErrorChecks"/> (the driver's choice: index errors surface at the next readback).</summary>
    public GpuBackend WithDeferredErrorChecks()
    {
        DeferErrorChecks = true;
        return this;
    }

    /// <summary>Waits for every launched kernel to finish, then checks deferred error flags.</summary>
    public void Synchronize()
    {
        Wait();
        CheckErrors();
    }

    private void Wait()
    {
        Interlocked.Increment(ref _syncs);
        _accelerator.Synchronize();
    }

    private void MemsetZero(ArrayView<byte> view)
    {
        Interlocked.Increment(ref _memsets);
        view.MemSetToZero();
    }

    private void ClearErrorSlots()
    {
        Interlocked.Increment(ref _memsets);
        _error.MemSetToZero();
    }

    public Storage AllocateUninitialized(DType dtype, long count)
    {
        long bytes = dtype.ByteCount(count);
        return new GpuStorage(this, _pool, _pool.Rent(bytes), bytes);
    }

    /// <summary>The error slot pair for a validating launch: in immediate mode the cleared pair 0; in deferred
    /// mode the next free pair, with <paramref name="describe"/> turning (flag, value) into the message later.</summary>
    private ArrayView<int> ErrorSlot(Func<int, int, string> describe)
    {
        if (!DeferErrorChecks)
        {
            ClearErrorSlots();
            return _error.View.SubView(0, 2);
        }
        if (_pendingChecks.Count == ErrorSlots) Synchronize();
        _pendingChecks.Add(describe);
        return _error.View.SubView(2 * (_pendingChecks.Count - 1), 2);
    }

    /// <summary>Immediate mode: waits and throws when the op's flag is set. Deferred mode: nothing.</summary>
    private void CheckNow(Func<int, int, string> describe)
    {
        if (DeferErrorChecks) return;
        Wait();
        var e = ReadErrorSlots(2);
        if (e[0] == 0) return;
        ClearErrorSlots(); // deferred checks expect clean slots
        throw new TensorIndexException(describe(e[0], e[1]));
    }

    /// <summary>Reads the deferred flags (one readback, after a wait) and throws for the first op that failed.</summary>
    private void CheckErrors()
    {
        if (_pendingChecks.Count == 0) return;
        int n = _pendingChecks.Count;
        var e = ReadErrorSlots(2 * n);
        var checks = _pendingChecks.ToArray();
        _pendingChecks.Clear();
        ClearErrorSlots();
        for (int i = 0; i < n; i++)
            if (e[2 * i] != 0) throw new TensorIndexException(checks[i]!(e[2 * i], e[2 * i + 1]));
    }

    private int[] ReadErrorSlots(int count)
    {
        Interlocked.Increment(ref _readbacks);
        var e = new int[count];
        _error.View.SubView(0, count).CopyToCPU(e);
        return e;
    }

    public double SumOfSquares(IReadOnlyList<Tensor> tensors)
    {
        // Each tensor's x² reduced by the kernel into its own slot of one fp32 vector, read back once and added
        // on the host in order: the same terms and the same double sum as calling SumOfSquares per tensor.
        ArgumentNullException.ThrowIfNull(tensors);
        if (tensors.Count == 0) return 0;
        var device = tensors[0].Device;
        using var partials = Tensor.Zeros(device, DType.F32, tensors.Count);
        for (int i = 0; i < tensors.Count; i++)
        {
            var x = tensors[i];
            if (x.Numel == 0) continue;
            using var squares = Tensor.Uninitialized(device, DType.F32, x.Shape.ToArray());
            Unary(UnaryOp.Square, x, squares, 0, 0);
            using var slot = partials.Narrow(0, i, 1).Reshape(Enumerable.Repeat(1, x.Rank).ToArray());
            ReduceSum(squares, slot);
        }
        var sums = partials.ToArray<float>();
        double total = 0;
        foreach (float s in sums) total += s;
        return total;
    }
}
