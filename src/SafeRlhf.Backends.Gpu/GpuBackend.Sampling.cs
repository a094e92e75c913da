using ILGPU;
using ILGPU.Runtime;
using SafeRlhf.Kernels;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Gpu;

// On-device next-token sampling: only the ids come back (one wait per decode step).
public sealed partial class GpuBackend : IDeviceSampler
{
    public bool SamplesOnDevice => true;

    public int[] Sample(Tensor logits, double temperature, double topP, ReadOnlySpan<double> uniforms)
    {
        if (logits.Rank < 1 || logits.Dim(-1) == 0) throw new TensorShapeException($"Sample: logits {logits.Shape} must be [.., V] with V > 0");
        int vocab = logits.Dim(-1);
        int rows = checked((int)(logits.Numel / vocab));
        if (uniforms.Length != rows) throw new ArgumentException($"Sample: {uniforms.Length} uniforms for {rows} rows of logits {logits.Shape}");
        if (temperature < 0 || double.IsNaN(temperature)) throw new ArgumentOutOfRangeException(nameof(temperature), $"Sample: temperature must be ≥ 0, got {temperature}");
        if (!(topP > 0 && topP <= 1)) throw new ArgumentOutOfRangeException(nameof(topP), $"Sample: top-p must be in (0, 1], got {topP}");
        if (rows == 0) return [];
        var device = logits.Device;
        using var sx = In(logits);
        using var probs = Tensor.Uninitialized(device, DType.F64, rows, vocab);
        using var order = Tensor.Uninitialized(device, DType.I32, rows, vocab);
        using var u = Tensor.FromArray(device, uniforms.ToArray(), rows);
        using var tokens = Tensor.FromArray(device, Enumerable.Repeat(-1, rows).ToArray(), rows);
        int limit = Math.Min(256, MaxGroup);
        int group = WarpSize;
        while (group < limit && group < vocab) group *= 2;
        int grid = Math.Clamp(rows, 1, _isCpu ? 4 * _accelerator.NumMultiprocessors : 65535);
        var config = new KernelConfig(new Index1D(grid), new Index1D(group), SharedMemoryConfig.RequestDynamic<int>(group));
        _kernels.Sample.Value(config, sx.F32, Raw(probs).Cast<double>(), Raw(order).Cast<int>(), Raw(u).Cast<double>(),
            Raw(tokens).Cast<int>(), new SampleParams(rows, vocab, temperature, topP));
        return tokens.ToArray<int>();
    }
}
