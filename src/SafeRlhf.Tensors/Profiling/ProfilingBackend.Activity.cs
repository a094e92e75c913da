namespace SafeRlhf.Tensors.Profiling;

// Device activity (syncs, launches, memsets, transfers) of the inner backend, and the batched global norm.
public sealed partial class ProfilingBackend
{
    /// <summary>The inner backend's device counters (all zero for a backend that runs synchronously on the host).</summary>
    public DeviceActivity Activity => Inner is IDeviceActivitySource s ? s.Activity : default;

    /// <summary>The device activity of <paramref name="region"/> (counted across the inner backend, whatever
    /// <see cref="Enabled"/> says).</summary>
    public DeviceActivity Measure(Action region)
    {
        ArgumentNullException.ThrowIfNull(region);
        var before = Activity;
        region();
        return Activity - before;
    }

    /// <summary>Forwards to the inner backend's batched reduction, or sums <see cref="SumOfSquares(Tensor)"/> per tensor.</summary>
    public double SumOfSquares(IReadOnlyList<Tensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (Inner is not IBatchedSumOfSquares batched)
        {
            double total = 0;
            foreach (var t in tensors) total += SumOfSquares(t);
            return total;
        }
        long t0 = Begin();
        double flops = 0, bytes = 0;
        foreach (var t in tensors)
        {
            flops += 2.0 * t.Numel;
            bytes += B(t);
        }
        try { return batched.SumOfSquares(tensors); }
        finally { End(t0, "SumOfSquares", flops, bytes); }
    }

    /// <summary>Forwards to the inner backend's uninitialized allocation (recorded as "Allocate"), or allocates zeros.</summary>
    public Storage AllocateUninitialized(DType dtype, long count)
    {
        if (Inner is not IUninitializedAllocator a) return Allocate(dtype, count);
        long t0 = Begin();
        try { return a.AllocateUninitialized(dtype, count); }
        finally { End(t0, "Allocate", 0, dtype.IsQuantized() && count % DTypeInfo.QuantBlock != 0 ? 0 : dtype.ByteCount(count)); }
    }

    public bool SamplesOnDevice => Inner is IDeviceSampler { SamplesOnDevice: true };

    /// <summary>Forwards to the inner backend's device sampler (recorded as "Sample").</summary>
    public int[] Sample(Tensor logits, double temperature, double topP, ReadOnlySpan<double> uniforms)
    {
        if (Inner is not IDeviceSampler { SamplesOnDevice: true } sampler)
            throw new NotSupportedException($"Sample: backend '{Inner.Name}' does not sample on its device");
        long t0 = Begin();
        try { return sampler.Sample(logits, temperature, topP, uniforms); }
        finally { End(t0, "Sample", 4.0 * logits.Numel, B(logits)); }
    }
}
