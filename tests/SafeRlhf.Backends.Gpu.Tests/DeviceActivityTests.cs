using SafeRlhf.Llama;
using SafeRlhf.Nn;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Profiling;

namespace SafeRlhf.Backends.Gpu.Tests;

/// <summary>Host waits, launches, memsets and transfers counted by the ILGPU backend (through
/// <see cref="ProfilingBackend"/>): uploads do not wait, outputs are not zeroed before a kernel fills them, the
/// global gradient norm waits once, error flags are read once at the next readback, a decode token waits once and
/// memsets only the error flags.</summary>
public sealed class DeviceActivityTests(GpuFixture fixture) : GpuTestBase(fixture)
{
    private ProfilingBackend Profiled() => new(Fixture.Backend);

    private T Deferred<T>(Func<T> body)
    {
        Fixture.Backend.DeferErrorChecks = true;
        try { return body(); }
        finally
        {
            Fixture.Backend.Synchronize();
            Fixture.Backend.DeferErrorChecks = false;
        }
    }

    [Fact]
    public void AnUploadNeitherWaitsNorZeroesItsStorage()
    {
        var p = Profiled();
        var device = new Device(p);
        var data = Random(1, 1000);
        Tensor? t = null;
        var a = p.Measure(() => t = Tensor.FromArray(device, data, 10, 100));
        using (t)
        {
            Assert.Equal(new DeviceActivity(0, 0, 0, 1, 0), a);
            float[] back = [];
            var r = p.Measure(() => back = t!.ToArray<float>());
            Assert.Equal(data, back);
            Assert.Equal(1, r.Synchronizations);
            Assert.Equal(1, r.Readbacks);
        }
    }

    [Fact]
    public void KernelOutputsAndStagedTemporariesAreNotZeroed()
    {
        var p = Profiled();
        var device = new Device(p);
        using var x = Tensor.FromArray(device, Random(2, 6 * 8), 6, 8);
        using var y = Tensor.Uninitialized(device, DType.F32, 6, 8);
        using var yt = Tensor.Zeros(device, DType.F32, 8, 6);
        var a = p.Measure(() =>
        {
            p.Softmax(x, y, log: false);
            p.Softmax(x, yt.Transpose(0, 1), log: false); // strided output: staged temporary, then copied back
        });
        Assert.Equal(0, a.Memsets);
        Assert.Equal(0, a.Synchronizations);
        Assert.Equal(3, a.Launches); // softmax, softmax into the temporary, copy back
        var (_, rx) = Pair(Random(2, 6 * 8), 6, 8);
        var (_, ry) = Zeros(6, 8);
        R.Softmax(rx, ry, log: false);
        AssertClose((y, ry), what: "softmax");
        AssertClose((yt.Transpose(0, 1).Contiguous(), ry), what: "strided softmax");
    }

    [Fact]
    public void TheGlobalNormWaitsOnceAndEqualsThePerTensorSum()
    {
        var p = Profiled();
        var device = new Device(p);
        var tensors = Enumerable.Range(0, 7).Select(i => Tensor.FromArray(device, Random(10 + i, 37 * (i + 1)), i + 1, 37)).ToList();
        double perTensor = tensors.Sum(t => Fixture.Backend.SumOfSquares(t));
        double batched = 0;
        var a = p.Measure(() => batched = p.SumOfSquares(tensors));
        Assert.Equal(perTensor, batched);
        Assert.Equal(1, a.Synchronizations);
        Assert.Equal(1, a.Readbacks);
        double expected = tensors.Sum(t => t.ToArray<float>().Sum(v => (double)v * v));
        Assert.Equal(expected, batched, 4);
        foreach (var t in tensors) t.Dispose();
    }

    [Fact]
    public void DeferredIndexErrorsWaitForTheNextReadbackAndNameTheOp()
    {
        using var x = Tensor.FromArray(Gpu, Random(3, 12), 4, 3);
        using var index = Tensor.FromArray(Gpu, new[] { 0, 9, 2 }, 3, 1);
        using var y = Tensor.Zeros(Gpu, DType.F32, 3, 1);
        var before = Fixture.Backend.Activity;
        var e = Deferred(() =>
        {
            G.Gather(x.Narrow(1, 0, 1), index, y, 0);
            Assert.Equal(0, (Fixture.Backend.Activity - before).Synchronizations);
            return Assert.Throws<TensorIndexException>(() => y.ToArray<float>());
        });
        Assert.Contains("Gather: index 9 out of range [0, 4)", e.Message);
        // immediate mode (the default) still throws at the op
        Assert.Throws<TensorIndexException>(() => G.Gather(x.Narrow(1, 0, 1), index, y, 0));
    }

    private static readonly LlamaConfig Tiny = new()
    {
        Dim = 16, HiddenDim = 32, NLayers = 2, NHeads = 4, NKvHeads = 2, VocabSize = 32, SeqLen = 32,
    };

    [Fact]
    public void ADecodeTokenWaitsAtMostOnceAndZeroesNoOutput()
    {
        var p = Profiled();
        var device = new Device(p);
        using var model = LlamaModel.Create(Tiny, device, new Rng(4));
        var options = new SamplingOptions { Temperature = 0.8, TopP = 0.9, Seed = 7 };
        int[] prompt = [1, 5, 9];
        var (one, five) = Deferred(() => (
            p.Measure(() => Generator.Generate(model, prompt, 1, options)),
            p.Measure(() => Generator.Generate(model, prompt, 5, options))));
        var perToken = five - one;
        Assert.True(perToken.Synchronizations <= 4, $"4 decode tokens: {perToken}");
        Assert.True(perToken.Launches > 0, $"4 decode tokens: {perToken}");
        // op outputs the kernels write in full are not zeroed (was 42 memsets per token); what remains is the clear of
        // the deferred error flags after the token's one readback
        Assert.True(perToken.Memsets <= 4, $"4 decode tokens: {perToken}");
        // 39 launches per token for the 2-layer model (no fusing yet): a rise means an op gained a kernel
        Assert.True(perToken.Launches <= 4 * 39, $"4 decode tokens: {perToken}");
    }

    [Fact]
    public void ATrainingStepWaitsForTheLossAndTheNormOnly()
    {
        var p = Profiled();
        var device = new Device(p);
        using var model = LlamaModel.Create(Tiny, device, new Rng(5));
        using var optimizer = new AdamW(model.TrainableParameters(), lr: 1e-3);
        int parameterTensors = model.TrainableParameters().Count();
        Assert.True(parameterTensors > 10);
        int[] tokens = [1, 5, 9, 3, 7, 2, 8, 4];
        int[] targets = [5, 9, 3, 7, 2, 8, 4, 6];
        var clip = default(DeviceActivity);
        void Step()
        {
            using var scope = new TensorScope();
            var hidden = model.Forward(Tensor.FromArray(device, tokens, 1, 8), Tensor.FromArray(device, Enumerable.Range(0, 8).ToArray(), 1, 8));
            var logits = model.Logits(hidden).Reshape(8, Tiny.VocabSize);
            var loss = Ops.CrossEntropy(logits, Tensor.FromArray(device, targets, 8));
            loss.Backward();
            Assert.True(double.IsFinite(loss.Item()));
            clip = p.Measure(() => optimizer.ClipGradNorm(1.0));
            optimizer.Update();
            model.ZeroGrad();
        }
        Deferred(() => { Step(); return 0; }); // kernels compiled, pool warm
        var a = Deferred(() => p.Measure(Step));
        // the loss, the global norm, and Ops.CrossEntropy's count of non-ignored targets (read on the host)
        Assert.True(a.Synchronizations <= 3, $"one training step over {parameterTensors} parameter tensors: {a}");
        Assert.Equal(1, clip.Synchronizations);
        Assert.Equal(1, clip.Readbacks);
    }
}
