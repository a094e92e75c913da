using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using SafeRlhf.Backends.Gpu.CuBlas;
using SafeRlhf.Kernels;
using SafeRlhf.Tensors;

[assembly: InternalsVisibleTo("SafeRlhf.Backends.Gpu.Tests")]

namespace SafeRlhf.Backends.Gpu;

// Quantized weights against more than QuantizedGemvMaxRows activation rows on the cuBLAS engine: the weight matrix is
// dequantized, one matrix at a time, into a reusable scratch buffer owned by the backend (the exact Dequantize kernel),
// then multiplied by the dense GEMM (cublasGemmEx). The scratch is fp32, not BF16: a dequantized Q8_0/Q4_0 weight is an
// fp16 scale (11 significant bits) times an integer of up to 8 bits, a K-quant weight a difference of such products,
// which BF16's 8 significant bits would round (see WeightScratchTests); fp32 holds each of them exactly. The GEMM then
// computes like every fp32 product of GemmEngine.CuBlas: TF32 tensor-op math (operands read with 10 mantissa bits,
// products accumulated in fp32).
public sealed partial class GpuBackend
{
    private MemoryBuffer1D<float, Stride1D.Dense>? _weightScratch;

    /// <summary>Whether quantized products with more than <see cref="QuantizedGemvMaxRows"/> rows dequantize the weight
    /// into the scratch and run the dense GEMM: always on the cuBLAS engine; on the ILGPU engine only when
    /// <see cref="ScratchOnIlgpu"/> asks (its in-tile kernel, the oracle, otherwise).</summary>
    internal bool UseWeightScratch => Gemm == GemmEngine.CuBlas || ScratchOnIlgpu;

    /// <summary>Routes the ILGPU engine's quantized GEMMs through the scratch and the ILGPU dense Gemm kernel: the path
    /// the cuBLAS engine takes, with the hand-written GEMM in cuBLAS's place (for testing it on the CPU accelerator).</summary>
    internal bool ScratchOnIlgpu { get; set; }

    /// <summary>Floats the scratch holds (0 before the first scratch product).</summary>
    internal long WeightScratchFloats => _weightScratch?.Length ?? 0;

    /// <summary>The first <paramref name="floats"/> of the scratch, grown (never shrunk) to fit.</summary>
    private ArrayView<float> WeightScratch(long floats)
    {
        if (_weightScratch is null || _weightScratch.Length < floats)
        {
            if (_weightScratch is not null)
            {
                Wait(); // earlier products may still read the old buffer (a counted host wait, once per growth)
                _weightScratch.Dispose();
            }
            _weightScratch = _accelerator.Allocate1D<float>(floats);
        }
        return _weightScratch.View.SubView(0, floats);
    }

    private void ReleaseWeightScratch()
    {
        _weightScratch?.Dispose();
        _weightScratch = null;
    }

    /// <summary>Forward: c = y [N, M] = a [N, K] · W [M, K]ᵀ; backward: c = dx [N, K] = a [N, M] · W [M, K]. W is the
    /// quantized weight <paramref name="w"/> dequantized into the scratch; a and c are contiguous fp32.</summary>
    private void ScratchQuantizedMatMul(ArrayView<float> a, Tensor w, ArrayView<float> c, int n, int m, int k, bool backward)
    {
        long count = (long)m * k;
        var scratch = WeightScratch(count);
        _kernels.Dequantize.Value(Linear(count), QuantBytes(w), scratch, new QuantizeParams(count / DTypeInfo.QuantBlock, QuantKind(w)));
        if (Gemm == GemmEngine.CuBlas)
        {
            var g = backward ? GemmMapping.QuantizedMatMulBackward(n, m, k) : GemmMapping.QuantizedMatMul(n, m, k);
            _cublas!.GemmEx(_cublasHandle, g, Address(scratch), Address(a), Address(c), CuBlasLibrary.R32F, CuBlasLibrary.Compute32FFastTf32, 0f);
            return;
        }
        // the same strides as the in-tile quantized Gemm: W(kk, j) is element j·K + kk forward, kk·K + j backward
        var p = backward
            ? new GemmParams(n, k, m, 1, 0, 0, m, 1, 0, 0, k, 1, 0, 0, k, 1, accumulate: false)
            : new GemmParams(n, m, k, 1, 0, 0, k, 1, 0, 0, 1, k, 0, 0, m, 1, accumulate: false);
        _kernels.Gemm.Value(backward ? GemmConfig(n, k, 1) : GemmConfig(n, m, 1), a, scratch, c, p);
    }

    /// <summary>Launch shape of the batched quantized GEMV: one group per weight row, two warps (capped by the
    /// accelerator), with <see cref="QuantGemvParams.SharedFloats"/> of dynamic shared memory.</summary>
    private KernelConfig QuantGemvConfig(int m)
    {
        int group = Math.Min(2 * WarpSize, MaxGroup);
        int grid = (int)Math.Clamp(m, 1, _isCpu ? 4L * _accelerator.NumMultiprocessors : 65535L);
        return new KernelConfig(new Index1D(grid), new Index1D(group), SharedMemoryConfig.RequestDynamic<float>(QuantGemvParams.SharedFloats(group)));
    }
}
