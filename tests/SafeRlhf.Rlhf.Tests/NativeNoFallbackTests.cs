using System.Reflection;
using System.Reflection.Emit;
using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Llama;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Profiling;

namespace SafeRlhf.Rlhf.Tests;

/// <summary>The native backend runs every op itself: no code of its namespace calls another backend (read from the IL, so
/// no fallback can be added without this test failing), and a full SFT step and a PPO-Lagrangian step on it complete —
/// an op it has no kernel for would throw <see cref="BackendNotSupportedException"/> — with the ops that used to be
/// delegated to the double-precision reference (UnaryBackward, ReduceSum, ScatterAdd, broadcast Binary) among those it ran.</summary>
public sealed class NativeNoFallbackTests
{
    private static readonly LlamaConfig Tiny = new()
    {
        Dim = 32, HiddenDim = 64, NLayers = 1, NHeads = 2, NKvHeads = 1, VocabSize = 40, SeqLen = 32,
    };

    private const int Pad = 0, Eos = 2;

    /// <summary>Every method, constructor, accessor, lambda and iterator body declared in the native backend's namespace.</summary>
    private static IEnumerable<MethodBase> NativeCode()
    {
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        foreach (var type in typeof(NativeBackend).Assembly.GetTypes().Where(t => t.Namespace == typeof(NativeBackend).Namespace))
        {
            foreach (var m in type.GetMethods(all)) yield return m;
            foreach (var c in type.GetConstructors(all)) yield return c;
        }
    }

    /// <summary>The methods one body calls or constructs (call, callvirt, newobj, ldftn operands).</summary>
    private static IEnumerable<MethodBase> Callees(MethodBase method)
    {
        var il = method.GetMethodBody()?.GetILAsByteArray();
        if (il is null) yield break;
        var oneByte = typeof(OpCodes).GetFields().Select(f => (OpCode)f.GetValue(null)!).Where(o => o.Size == 1).ToDictionary(o => o.Value);
        var twoByte = typeof(OpCodes).GetFields().Select(f => (OpCode)f.GetValue(null)!).Where(o => o.Size == 2).ToDictionary(o => (byte)o.Value);
        for (int i = 0; i < il.Length;)
        {
            OpCode op = il[i] == 0xFE ? twoByte[il[++i]] : oneByte[il[i]];
            i++;
            if (op.OperandType == OperandType.InlineMethod)
            {
                MethodBase? callee = null;
                try
                {
                    callee = method.Module.ResolveMethod(BitConverter.ToInt32(il, i), method.DeclaringType?.GetGenericArguments(),
                        method.IsGenericMethod ? method.GetGenericArguments() : null);
                }
                catch (ArgumentException) { }
                if (callee is not null) yield return callee;
            }
            i += op.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, i),
                _ => 4,
            };
        }
    }

    [Fact]
    public void NativeCodeNeverCallsAnotherBackend()
    {
        var calls = NativeCode().SelectMany(m => Callees(m).Select(c => (Caller: m, Callee: c))).ToList();
        Assert.Contains(calls, c => c.Callee.Name == "Exp" && c.Callee.DeclaringType!.Name == "TensorPrimitives");  // the IL was read
        foreach (var (caller, callee) in calls)
        {
            var owner = callee.DeclaringType!;
            bool otherBackend = typeof(IBackend).IsAssignableFrom(owner) && owner != typeof(NativeBackend) && owner != typeof(IBackend);
            bool reference = owner.Namespace?.StartsWith("SafeRlhf.Backends.Cpu.Reference", StringComparison.Ordinal) == true;
            Assert.False(otherBackend || reference,
                $"{caller.DeclaringType!.Name}.{caller.Name} calls {owner.FullName}.{callee.Name}: the native backend delegates to another backend");
        }
    }

    [Fact]
    public void SftAndPpoStepsRunEveryOpOnTheNativeBackend()
    {
        var profiler = new ProfilingBackend(new NativeBackend());
        var device = new Device(profiler);
        var rng = new Rng(5);

        using (var model = LlamaModel.Create(Tiny, device, rng.Fork()))
        {
            SftTrainer.Example[] data = [new([1, 5, 6], [7, 8, Eos]), new([1, 9], [10, 11, 12, Eos])];
            double loss = SftTrainer.Train(model, data, new TrainOptions { Steps = 1, BatchSize = 2, Lr = 1e-2 }, rng.Fork(), Pad);
            Assert.True(double.IsFinite(loss), $"SFT loss {loss}");
        }
        var step = PpoStep(device, rng);
        Assert.All(step.Values, kv => Assert.True(double.IsFinite(kv.Value), $"PPO {kv.Key} = {kv.Value}"));

        var ran = profiler.Snapshot().Select(p => p.Op).ToHashSet();
        foreach (var op in new[] { "ReduceSum", "ScatterAdd", "Gather", "Binary.Minimum", "UnaryBackward.Exp", "MatMul", "AdamW", "Attention", "AttentionBackward" })
            Assert.True(ran.Contains(op), $"{op} not among the ops run: {string.Join(", ", ran.Order())}");
    }

    private static StepMetrics PpoStep(Device device, Rng rng)
    {
        using var actor = LlamaModel.Create(Tiny, device, rng.Fork());
        using var reference = LlamaModel.Create(Tiny, device, rng.Fork());
        reference.CopyFrom(actor);
        using var rewardModel = ScoreModel.Create(LlamaModel.Create(Tiny, device, rng.Fork()), rng.Fork());
        using var costModel = ScoreModel.Create(LlamaModel.Create(Tiny, device, rng.Fork()), rng.Fork());
        using var rewardCritic = ScoreModel.Create(LlamaModel.Create(Tiny, device, rng.Fork()), rng.Fork());
        using var costCritic = ScoreModel.Create(LlamaModel.Create(Tiny, device, rng.Fork()), rng.Fork());
        foreach (var frozen in new SafeRlhf.Nn.Module[] { reference, rewardModel, costModel })
            foreach (var (_, p) in frozen.NamedParameters()) p.RequiresGrad = false;
        var options = new PpoOptions { Steps = 1, BatchSize = 2, MaxNewTokens = 3, ActorLr = 1e-2, CriticLr = 1e-2, KlCoeff = 0.1, LambdaLr = 0.5 };
        int[][] prompts = [[1, 5, 6, 7], [1, 8, 9]];
        using var trainer = new PpoTrainer(RlMode.PpoLagrangian, actor, reference, rewardModel, costModel, rewardCritic, costCritic,
            options, r => prompts[r.NextInt(prompts.Length)], new Rng(3), Pad, Eos);
        return trainer.Step();
    }
}
