using SafeRlhf.Rlhf.Pipeline;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Rlhf.Tests;

/// <summary>The built-in task end to end on the native CPU backend with the default budget: the reward and cost
/// models beat chance on held-out pairs, PPO-Lagrangian ends at or under the cost threshold with more reward than
/// the SFT policy, plain PPO with the same budget ends over the threshold, and λ rises while the policy is unsafe.</summary>
public sealed class PipelineTests
{
    [Fact]
    public void SafeRlhfBeatsPlainPpoOnTheBuiltInTask()
    {
        var options = new PipelineOptions { Seed = 1 };
        var summary = new BuiltInPipeline(options, TestDevices.Native).Run();
        var p = summary.Policies;

        Assert.True(summary.RewardModel.Accuracy > 0.8, $"reward model held-out accuracy {summary.RewardModel.Accuracy}");
        Assert.True(summary.CostModel.Accuracy > 0.6, $"cost model held-out accuracy {summary.CostModel.Accuracy}");
        Assert.True(summary.CostModel.SignAccuracy > 0.8, $"cost model sign accuracy {summary.CostModel.SignAccuracy}");

        Assert.True(p["sft"].MeanCost > summary.Threshold, $"the SFT policy should start unsafe: mean cost {p["sft"].MeanCost}");
        Assert.True(p["ppo_lag"].MeanCost <= summary.Threshold, $"PPO-Lagrangian mean cost {p["ppo_lag"].MeanCost} > threshold {summary.Threshold}");
        Assert.True(p["ppo"].MeanCost > summary.Threshold, $"plain PPO mean cost {p["ppo"].MeanCost} ≤ threshold {summary.Threshold}");
        Assert.True(p["ppo_lag"].MeanReward > p["sft"].MeanReward, $"PPO-Lagrangian reward {p["ppo_lag"].MeanReward} ≤ SFT {p["sft"].MeanReward}");
        Assert.True(p["ppo"].MeanReward > p["sft"].MeanReward, $"PPO reward {p["ppo"].MeanReward} ≤ SFT {p["sft"].MeanReward}");
        // The cost model's verdict agrees with the task's own rules on which policy is the safer one.
        Assert.True(p["ppo_lag"].RuleUnsafeRate < p["ppo"].RuleUnsafeRate, "rules: PPO-Lagrangian should be safer than PPO");

        // The models learned the task's rules on held-out prompts: for a harmful request compliance costs more than
        // zero and a redirect less; for a benign one a detailed answer earns more reward than a needless refusal.
        var kinds = summary.ScoresByKind;
        Assert.True(kinds["harmful"]["detailed"].Cost > 0 && kinds["harmful"]["redirect"].Cost < 0,
            $"harmful detailed cost {kinds["harmful"]["detailed"].Cost}, redirect {kinds["harmful"]["redirect"].Cost}");
        Assert.True(kinds["benign"]["detailed"].Cost < 0, $"benign detailed cost {kinds["benign"]["detailed"].Cost}");
        Assert.True(kinds["benign"]["detailed"].Reward > kinds["benign"]["refusal"].Reward,
            $"benign detailed reward {kinds["benign"]["detailed"].Reward} ≤ refusal {kinds["benign"]["refusal"].Reward}");
        Assert.True(kinds["harmful"]["redirect"].Reward > kinds["harmful"]["refusal"].Reward,
            $"harmful redirect reward {kinds["harmful"]["redirect"].Reward} ≤ refusal {kinds["harmful"]["refusal"].Reward}");

        var trace = summary.LambdaTrace;
        Assert.Equal(options.Rl.Steps, trace.Count);
        Assert.True(trace.Max() > options.Rl.LambdaInit, $"λ never rose above its initial value {options.Rl.LambdaInit}");
        Assert.True(trace[^1] < trace.Max(), "λ should settle below its peak once the policy is safe");
    }
}
