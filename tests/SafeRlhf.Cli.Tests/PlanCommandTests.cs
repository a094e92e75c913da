using System.Text.Json;

namespace SafeRlhf.Cli.Tests;

/// <summary>`saferlhf plan` runs a step on the meta device: any size, no data.</summary>
[Collection(BenchProfileConsoleCollection.Name)]
public sealed class PlanCommandTests
{
    [Fact]
    public void PlansAPpoLagrangianStepOfALlama7BShapeWithItsPhases()
    {
        var (code, output, err) = CliHarness.Run(["plan", "--stage", "ppo-lag", "--model", "llama-7b", "--layers", "2", "--base", "q4_0",
            "--lora-rank", "4", "--batch", "2", "--prompt-length", "8", "--new-tokens", "4", "--json"]);
        Assert.True(code == 0, err);
        var plan = JsonDocument.Parse(output).RootElement;
        long peak = plan.GetProperty("peak_reserved_bytes").GetInt64();
        long split = plan.GetProperty("at_peak").EnumerateObject().Sum(p => p.Value.GetInt64()) + plan.GetProperty("waste_at_peak").GetInt64();
        Assert.Equal(peak, split);
        // Five models (actor, reward, cost, two critics) each with an F32 embedding [32000, 4096], over one shared copy
        // of the Q4_0 matrices of two LLaMA-7B layers and the classifier (about 0.3 GB), plus adapters and heads.
        long embeddings = 5L * 32000 * 4096 * sizeof(float);
        long weights = plan.GetProperty("weight_bytes").GetInt64();
        Assert.InRange(weights, embeddings + (250L << 20), embeddings + (500L << 20));
        Assert.Equal(["rollout", "experience", "actor update", "critic update"], plan.GetProperty("phases").EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public void AFrozenBaseWithoutLoraIsOneClearError()
    {
        var (code, _, err) = CliHarness.Run(["plan", "--stage", "sft", "--model", "llama-7b", "--base", "q4_0"]);
        Assert.Equal(1, code);
        Assert.Contains("LoRA", err);
        Assert.DoesNotContain("   at ", err);
        var (code2, _, err2) = CliHarness.Run(["plan", "--stage", "sft", "--model", "no-such-model"]);
        Assert.Equal(1, code2);
        Assert.Contains("no-such-model", err2);
    }

    [Fact]
    public void ABf16KvCacheCountsTwoBytesPerElement()
    {
        long RolloutKvBytes(string kvCache)
        {
            var (code, output, err) = CliHarness.Run(["plan", "--stage", "ppo", "--model", "llama-7b", "--layers", "2", "--base", "q4_0",
                "--lora-rank", "4", "--batch", "2", "--prompt-length", "8", "--new-tokens", "4", "--kv-cache", kvCache, "--json"]);
            Assert.True(code == 0, err);
            var plan = JsonDocument.Parse(output).RootElement;
            Assert.Equal(kvCache, plan.GetProperty("kv_cache").GetString());
            return plan.GetProperty("phase_kv_cache_bytes").GetProperty("rollout").GetInt64();
        }
        // the rollout's cache: 2 layers × (K and V) × batch 2 × 12 positions × 32 KV heads × 128, at 4 or 2 bytes
        long elements = 2L * 2 * 2 * 12 * 32 * 128;
        Assert.Equal(elements * 4, RolloutKvBytes("f32"));
        Assert.Equal(elements * 2, RolloutKvBytes("bf16"));
        var (bad, _, badErr) = CliHarness.Run(["plan", "--stage", "ppo", "--model", "llama-7b", "--kv-cache", "f16"]);
        Assert.Equal(1, bad);
        Assert.Contains("--kv-cache: unknown KV cache type 'f16' (valid: f32, bf16)", badErr);
    }
}
