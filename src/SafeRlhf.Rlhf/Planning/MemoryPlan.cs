using SafeRlhf.Llama;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Meta;

namespace SafeRlhf.Rlhf.Planning;

/// <summary>The planned peak memory of one training step: the reserved total at its highest (what a device must
/// hold), split by what the live bytes were for at that moment, and each phase's own peak.</summary>
public sealed record MemoryPlan(PlanSettings Settings, long PeakReservedBytes, long PeakLiveBytes,
    IReadOnlyDictionary<MemoryCategory, long> AtPeak, long WasteAtPeak, IReadOnlyList<MetaBackend.PhasePeak> Phases, long Allocations)
{
    /// <summary>Runs the step on a fresh meta device.</summary>
    public static MemoryPlan Of(PlanSettings settings)
    {
        var meta = new MetaBackend();
        MemoryPlanner.RunStep(settings, new Device(meta));
        var m = meta.Memory;
        var (atPeak, waste) = meta.AtPeak;
        return new MemoryPlan(settings, m.PeakReservedBytes, m.PeakLiveBytes, atPeak, waste, meta.Phases, meta.Allocations);
    }

    private static string Gib(long bytes) => $"{bytes / (double)(1L << 30),8:0.00} GiB";

    public void Write(TextWriter w)
    {
        var s = Settings;
        var c = s.Config;
        w.WriteLine($"plan: {s.Stage}, LLaMA dim {c.Dim}, {c.NLayers} layers, {c.NHeads}/{c.NKvHeads} heads, hidden {c.HiddenDim}, " +
                    $"vocab {c.VocabSize} ({c.ParameterCount / 1e9:0.00} B weights)");
        w.WriteLine($"      base {s.BaseType}, " + (s.LoraRank > 0 ? $"LoRA rank {s.LoraRank} on {string.Join(",", s.LoraTargets)}" : "full fine-tuning") +
                    $", batch {s.Batch}, " + (s.IsRl ? $"{s.PromptLength} prompt + {s.NewTokens} new tokens" : $"{s.PromptLength} tokens") +
                    $", gradient checkpointing {(s.GradientCheckpointing is { } g ? g ? "on" : "off" : "auto")}" +
                    (s.IsRl ? $", KV cache {s.KvCache.Name()} ({s.KvCache.Storage(DType.F32).ByteCount(1)} bytes per element)" : ""));
        w.WriteLine($"peak {Gib(PeakReservedBytes).Trim()} reserved ({Gib(PeakLiveBytes).Trim()} live at most; {Allocations} allocations; " +
                    "size classes of the cpu and cuda pools)");
        w.WriteLine("at the peak:");
        w.WriteLine($"  weights           {Gib(AtPeak[MemoryCategory.Weights])}");
        w.WriteLine($"  trainable state   {Gib(AtPeak[MemoryCategory.TrainableState])}   (gradients + AdamW moments)");
        w.WriteLine($"  activations       {Gib(AtPeak[MemoryCategory.Activations])}");
        w.WriteLine($"  KV cache          {Gib(AtPeak[MemoryCategory.KvCache])}");
        w.WriteLine($"  allocator waste   {Gib(WasteAtPeak)}");
        if (Phases.Count == 0) return;
        w.WriteLine("peak per phase (reserved; activations, KV cache):");
        foreach (var p in Phases)
            w.WriteLine($"  {p.Phase,-16}{Gib(p.ReservedBytes)}   ({Gib(p.LiveByCategory[MemoryCategory.Activations]).Trim()}, " +
                        $"{Gib(p.LiveByCategory[MemoryCategory.KvCache]).Trim()})");
    }

    public Dictionary<string, object> ToJson() => new()
    {
        ["stage"] = Settings.Stage,
        ["parameters"] = Settings.Config.ParameterCount,
        ["base"] = Settings.BaseType.ToString(),
        ["lora_rank"] = Settings.LoraRank,
        ["batch"] = Settings.Batch,
        ["prompt_length"] = Settings.PromptLength,
        ["new_tokens"] = Settings.IsRl ? Settings.NewTokens : 0,
        ["kv_cache"] = Settings.KvCache.Name(),
        ["weight_bytes"] = AtPeak[MemoryCategory.Weights],
        ["peak_reserved_bytes"] = PeakReservedBytes,
        ["peak_live_bytes"] = PeakLiveBytes,
        ["at_peak"] = AtPeak.ToDictionary(p => p.Key.ToString(), p => p.Value),
        ["waste_at_peak"] = WasteAtPeak,
        ["phases"] = Phases.ToDictionary(p => p.Phase, p => p.ReservedBytes),
        ["phase_kv_cache_bytes"] = Phases.ToDictionary(p => p.Phase, p => p.LiveByCategory[MemoryCategory.KvCache]),
        ["allocations"] = Allocations,
    };
}
