using SafeRlhf.Llama;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Profiling;

namespace SafeRlhf.Cli.Selftest;

/// <summary>Host waits per decode token on the device under test (tiny LLaMA, on-device sampling): at most one.</summary>
public static class DecodeSyncs
{
    public static void Check(Device device, SelftestReport report)
    {
        report.Run("host waits per decode token", "tiny", () =>
        {
            var profiled = new ProfilingBackend(device.Backend);
            var d = new Device(profiled);
            using var scope = new TensorScope();
            using var model = LlamaModel.Create(ModelChecks.Tiny, d, new Rng(6));
            var options = new SamplingOptions { Temperature = 0.8, TopP = 0.9, Seed = 3 };
            int[] prompt = [1, 2, 3];
            var one = profiled.Measure(() => Generator.Generate(model, prompt, 1, options));
            var five = profiled.Measure(() => Generator.Generate(model, prompt, 5, options));
            var perToken = five - one;
            double syncs = perToken.Synchronizations / 4.0;
            return new SelftestRow("host waits per decode token", "tiny", syncs <= 1, syncs, 1,
                $"{perToken.Launches / 4.0:F0} launches, {perToken.Memsets / 4.0:F1} memsets per token");
        });
    }
}
