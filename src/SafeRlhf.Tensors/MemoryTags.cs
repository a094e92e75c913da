namespace SafeRlhf.Tensors;

/// <summary>What an allocation is for, as a memory plan reports it.</summary>
public enum MemoryCategory { Activations, Weights, TrainableState, KvCache }

/// <summary>Ambient labels for the allocations made on this thread: a category (what the memory is for) and a
/// phase (which part of a step is running). Devices that plan memory (<see cref="Meta.MetaBackend"/>) read them;
/// the others ignore them. <c>using (MemoryTags.As(MemoryCategory.KvCache)) { … }</c>.</summary>
public static class MemoryTags
{
    [ThreadStatic] private static MemoryCategory t_category;
    [ThreadStatic] private static string? t_phase;

    public static MemoryCategory Category => t_category;
    /// <summary>The running phase ("rollout", "experience", …), or null outside any.</summary>
    public static string? Phase => t_phase;

    /// <summary>Tags allocations with <paramref name="category"/> until disposed.</summary>
    public static IDisposable As(MemoryCategory category)
    {
        var saved = t_category;
        t_category = category;
        return new Restore(() => t_category = saved);
    }

    /// <summary>Marks the start of a phase until disposed.</summary>
    public static IDisposable InPhase(string phase)
    {
        var saved = t_phase;
        t_phase = phase;
        return new Restore(() => t_phase = saved);
    }

    private sealed class Restore(Action restore) : IDisposable
    {
        private bool _done;
        public void Dispose()
        {
            if (_done) return;
            _done = true;
            restore();
        }
    }
}
