using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Tensors;
using static SafeRlhf.Backends.Cpu.Tests.NativeCheck;

namespace SafeRlhf.Backends.Cpu.Tests;

/// <summary>The thread count is process-wide: these tests run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class NativeThreadsCollection
{
    public const string Name = "native thread count";
}

/// <summary>The native thread pool: kernels of every parallel shape (chunked loops, regions with barriers, dynamic
/// tasks) give the same bits on one and two threads and on repeated runs, finish while other threads hog the cores or
/// the pool is oversubscribed, serve concurrent callers, and the default count follows the environment.</summary>
[Collection(NativeThreadsCollection.Name)]
public sealed class NativeThreadPoolTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(3);

    /// <summary>Kernel outputs on fixed inputs, large enough that every kernel goes parallel at two threads.</summary>
    private static Dictionary<string, float[]> Workload()
    {
        var rng = new Rng(11);
        var d = NativeDevice;
        var b = d.Backend;
        var outputs = new Dictionary<string, float[]>();
        using var scope = new TensorScope();

        // parallel_for: elementwise and row kernels
        int rows = 96, dim = 1000;
        var x = On(d, Random(rng, rows * dim), rows, dim);
        var up = On(d, Random(rng, rows * dim), rows, dim);
        var y = Zeros(d, rows, dim);
        b.SwiGlu(x, up, y);
        outputs["swiglu"] = y.ToFloatArray();
        var sm = Zeros(d, rows, dim);
        b.Softmax(x, sm, false);
        outputs["softmax"] = sm.ToFloatArray();
        var w = On(d, Random(rng, dim, 0.5, 1.5), dim);
        var normed = Zeros(d, rows, dim);
        var rstd = Zeros(d, rows);
        b.RmsNorm(x, w, normed, rstd, 1e-5);
        outputs["rmsnorm"] = normed.ToFloatArray();
        int tokens = 64, heads = 8, headDim = 64;
        var q = On(d, Random(rng, tokens * heads * headDim), 1, tokens, heads, headDim);
        var positions = On(d, Enumerable.Range(0, tokens).ToArray(), 1, tokens);
        var rotated = Zeros(d, 1, tokens, heads, headDim);
        b.Rope(q, positions, rotated, 10000.0, RopeStyle.Half, false);
        outputs["rope"] = rotated.ToFloatArray();

        // parallel_region with barriers: the packed GEMM; one partial dw row per thread: the RmsNorm backward
        int m = 150, n = 140, k = 300;
        var a = On(d, Random(rng, m * k), 1, m, k);
        var bm = On(d, Random(rng, k * n), 1, k, n);
        var c = Zeros(d, 1, m, n);
        b.MatMul(a, bm, c, false, false, false);
        outputs["gemm"] = c.ToFloatArray();
        var dy = On(d, Random(rng, rows * dim), rows, dim);
        var dx = Zeros(d, rows, dim);
        var dw = Zeros(d, dim);
        b.RmsNormBackward(x, w, rstd, dy, dx, dw);
        outputs["rmsnorm_dx"] = dx.ToFloatArray();
        outputs["rmsnorm_dw"] = dw.ToFloatArray();

        // parallel_tasks: attention blocks (with GEMMs nested inside each task)
        var keys = On(d, Random(rng, tokens * heads * headDim), 1, tokens, heads, headDim);
        var values = On(d, Random(rng, tokens * heads * headDim), 1, tokens, heads, headDim);
        var o = Zeros(d, 1, tokens, heads, headDim);
        var lse = Zeros(d, 1, heads, tokens);
        b.Attention(q, keys, values, null, o, lse, 0.125);
        outputs["attention"] = o.ToFloatArray();
        return outputs;
    }

    private static Dictionary<string, float[]> WorkloadOn(int threads)
    {
        NativeBackend.Threads = threads;
        return Workload();
    }

    private static void AssertSameBits(Dictionary<string, float[]> expected, Dictionary<string, float[]> actual, string what,
        params string[] except)
    {
        foreach (var (name, values) in expected)
        {
            if (except.Contains(name)) continue;
            var other = actual[name];
            Assert.Equal(values.Length, other.Length);
            for (int i = 0; i < values.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(values[i]) == BitConverter.SingleToInt32Bits(other[i]),
                    $"{what}: {name}[{i}] {values[i]:G9} vs {other[i]:G9}");
        }
    }

    [Fact]
    public void KernelsGiveTheSameBitsOnOneAndTwoThreadsAndOnEveryRepeat()
    {
        try
        {
            var one = WorkloadOn(1);
            var two = WorkloadOn(2);
            var twoAgain = WorkloadOn(2);
            var three = WorkloadOn(3);
            var threeAgain = WorkloadOn(3);
            // The RmsNorm dw sums one partial row per thread, so its bits may depend on the count (not on the run).
            AssertSameBits(one, two, "1 vs 2 threads", "rmsnorm_dw");
            AssertSameBits(one, three, "1 vs 3 threads", "rmsnorm_dw");
            AssertSameBits(two, twoAgain, "2 threads, twice");
            AssertSameBits(three, threeAgain, "3 threads, twice");
            for (int i = 0; i < one["rmsnorm_dw"].Length; i++) Assert.Equal(one["rmsnorm_dw"][i], two["rmsnorm_dw"][i], 1e-3f);
        }
        finally
        {
            NativeBackend.Threads = 0;
        }
    }

    /// <summary>Threads that spin until told to stop (each hogs a core while it runs).</summary>
    private sealed class Hogs : IDisposable
    {
        private volatile bool _stop;
        private readonly List<Thread> _threads = [];

        public Hogs(int count)
        {
            for (int i = 0; i < count; i++)
            {
                var t = new Thread(() =>
                {
                    long spins = 0;
                    while (!_stop) spins++;
                    GC.KeepAlive(spins);
                }) { IsBackground = true, Name = $"hog {i}" };
                t.Start();
                _threads.Add(t);
            }
        }

        public void Dispose()
        {
            _stop = true;
            foreach (var t in _threads) t.Join();
        }
    }

    [Theory]
    [InlineData(2, 1)]   // the default shape of a shared 2-core machine: one competitor
    [InlineData(2, 4)]   // every core contested
    [InlineData(8, 1)]   // more pool threads than cores: workers are descheduled inside barriers
    public async Task JobsFinishWithTheSameResultsWhileOtherThreadsHogTheCores(int threads, int hogs)
    {
        try
        {
            var expected = WorkloadOn(threads);
            using (new Hogs(hogs))
            {
                var run = Task.Run(() =>
                {
                    var results = new List<Dictionary<string, float[]>>();
                    for (int i = 0; i < 5; i++) results.Add(Workload());
                    return results;
                });
                var results = await run.WaitAsync(Bound);  // a TimeoutException fails the test: the pool stalled
                foreach (var result in results) AssertSameBits(expected, result, $"{threads} threads, {hogs} hogs");
            }
        }
        finally
        {
            NativeBackend.Threads = 0;
        }
    }

    [Fact]
    public async Task ConcurrentCallersEachGetTheirResults()
    {
        try
        {
            var expected = WorkloadOn(2);
            var callers = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
            {
                var results = new List<Dictionary<string, float[]>>();
                for (int i = 0; i < 4; i++) results.Add(Workload());
                return results;
            })).ToArray();
            var all = await Task.WhenAll(callers).WaitAsync(Bound);
            foreach (var caller in all)
                foreach (var result in caller) AssertSameBits(expected, result, "concurrent caller");
        }
        finally
        {
            NativeBackend.Threads = 0;
        }
    }

    [Fact]
    public void ZeroRestoresTheDefaultFromTheEnvironment()
    {
        string? own = Environment.GetEnvironmentVariable(ThreadCount.Variable);
        string? omp = Environment.GetEnvironmentVariable(ThreadCount.OpenMpVariable);
        try
        {
            Environment.SetEnvironmentVariable(ThreadCount.Variable, null);
            Environment.SetEnvironmentVariable(ThreadCount.OpenMpVariable, "3");
            NativeBackend.Threads = 0;
            Assert.Equal(3, NativeBackend.Threads);
            Environment.SetEnvironmentVariable(ThreadCount.Variable, "5");
            NativeBackend.Threads = 0;
            Assert.Equal(5, NativeBackend.Threads);
            NativeBackend.Threads = 2;  // an explicit count wins
            Assert.Equal(2, NativeBackend.Threads);
            Environment.SetEnvironmentVariable(ThreadCount.Variable, "lots");
            var ex = Assert.Throws<ArgumentException>(() => NativeBackend.Threads = 0);
            Assert.Contains(ThreadCount.Variable, ex.Message);
            Assert.Contains("'lots'", ex.Message);
            Environment.SetEnvironmentVariable(ThreadCount.Variable, null);
            Environment.SetEnvironmentVariable(ThreadCount.OpenMpVariable, null);
            NativeBackend.Threads = 0;
            Assert.Equal(Environment.ProcessorCount, NativeBackend.Threads);
        }
        finally
        {
            Environment.SetEnvironmentVariable(ThreadCount.Variable, own);
            Environment.SetEnvironmentVariable(ThreadCount.OpenMpVariable, omp);
            NativeBackend.Threads = 0;
        }
    }

    [Fact]
    public void ACountAboveTheLimitIsRejectedByTheLibrary()
    {
        try
        {
            var ex = Assert.Throws<NativeKernelException>(() => NativeBackend.Threads = ThreadCount.Max + 1);
            Assert.Contains("thread count", ex.Message);
        }
        finally
        {
            NativeBackend.Threads = 0;
        }
    }
}
