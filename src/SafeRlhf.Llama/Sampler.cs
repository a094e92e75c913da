using SafeRlhf.Tensors;

namespace SafeRlhf.Llama;

/// <summary>Sampling settings. Temperature 0 is greedy (argmax, lowest id on ties).</summary>
public sealed record SamplingOptions
{
    public double Temperature { get; init; } = 1.0;
    public double TopP { get; init; } = 1.0;
    /// <summary>CTRL-style penalty on tokens already in the sequence (1 = off): positive logits are divided by it, negative multiplied.</summary>
    public double RepetitionPenalty { get; init; } = 1.0;
    public ulong Seed { get; init; } = 42;

    public SamplingOptions Validate()
    {
        if (Temperature < 0 || double.IsNaN(Temperature)) throw new ArgumentOutOfRangeException(nameof(Temperature), $"temperature must be ≥ 0, got {Temperature}");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentOutOfRangeException(nameof(TopP), $"top-p must be in (0, 1], got {TopP}");
        if (!(RepetitionPenalty > 0)) throw new ArgumentOutOfRangeException(nameof(RepetitionPenalty), $"repetition penalty must be > 0, got {RepetitionPenalty}");
        return this;
    }
}

/// <summary>Picks the next token from one row of logits. Seeded: the same options give the same tokens.</summary>
public sealed class Sampler
{
    private readonly SamplingOptions _options;

    public Sampler(SamplingOptions options)
    {
        _options = options.Validate();
        Rng = new Rng(options.Seed);
    }

    public Rng Rng { get; }

    /// <summary>logits [vocab] (as doubles) → token id. <paramref name="previous"/> feeds the repetition penalty.</summary>
    public int Next(double[] logits, IReadOnlyCollection<int>? previous = null)
    {
        var l = (double[])logits.Clone();
        if (_options.RepetitionPenalty != 1.0 && previous is not null)
            foreach (int id in previous.Distinct())
                if (id >= 0 && id < l.Length) l[id] = l[id] > 0 ? l[id] / _options.RepetitionPenalty : l[id] * _options.RepetitionPenalty;
        if (_options.Temperature == 0) return ArgMax<double>(l);

        double max = l.Max();
        var probs = l.Select(v => Math.Exp((v - max) / _options.Temperature)).ToArray();
        double sum = probs.Sum();
        for (int i = 0; i < probs.Length; i++) probs[i] /= sum;

        int[] order = Enumerable.Range(0, probs.Length).ToArray();
        int keep = probs.Length;
        if (_options.TopP < 1.0)
        {
            // Nucleus: the smallest set of most likely tokens whose mass reaches top-p.
            Array.Sort(order, (a, b) => probs[b].CompareTo(probs[a]) is var c && c != 0 ? c : a.CompareTo(b));
            double cumulative = 0;
            keep = 0;
            while (keep < order.Length && cumulative < _options.TopP) cumulative += probs[order[keep++]];
        }
        double mass = 0;
        for (int i = 0; i < keep; i++) mass += probs[order[i]];
        double r = Rng.NextDouble() * mass;
        for (int i = 0; i < keep; i++)
        {
            r -= probs[order[i]];
            if (r <= 0) return order[i];
        }
        return order[keep - 1];
    }

    /// <summary>logits [.., V] on the model's device → the next token of each row where <paramref name="sample"/>
    /// is true (−1 elsewhere), drawing from <see cref="Rng"/> in row order exactly as <see cref="Next"/> row by row
    /// would. A backend that samples on the device (<see cref="IDeviceSampler"/>) returns only the ids, unless a
    /// repetition penalty is set (applied on the host); every other backend reads the logits back as doubles.</summary>
    public int[] NextRows(Tensor logits, IReadOnlyList<bool>? sample = null, IReadOnlyList<IReadOnlyCollection<int>?>? previous = null)
    {
        int rows = checked((int)(logits.Numel / logits.Dim(-1)));
        return NextRows(logits, Enumerable.Repeat(this, rows).ToArray(), sample, previous);
    }

    /// <summary>As the instance <see cref="NextRows(Tensor, IReadOnlyList{bool}?, IReadOnlyList{IReadOnlyCollection{int}?}?)"/>
    /// with one sampler per row (all with the same options), row i drawing from <paramref name="samplers"/>[i]'s
    /// generator: a row's token then depends on its own stream only, not on the other rows of the batch.</summary>
    public static int[] NextRows(Tensor logits, IReadOnlyList<Sampler> samplers, IReadOnlyList<bool>? sample = null,
        IReadOnlyList<IReadOnlyCollection<int>?>? previous = null)
    {
        int vocab = logits.Dim(-1);
        int rows = checked((int)(logits.Numel / vocab));
        if (samplers.Count != rows) throw new ArgumentException($"NextRows: {samplers.Count} samplers for {rows} rows of logits", nameof(samplers));
        var o = samplers[0]._options;
        if (samplers.Any(s => s._options with { Seed = 0 } != o with { Seed = 0 }))
            throw new ArgumentException("NextRows: the samplers of one batch must share their options (all but the seed)", nameof(samplers));
        bool Active(int i) => sample is null || sample[i];
        var result = new int[rows];
        if (logits.Backend is IDeviceSampler { SamplesOnDevice: true } device && o.RepetitionPenalty == 1.0)
        {
            var uniforms = new double[rows];
            for (int i = 0; i < rows; i++) uniforms[i] = !Active(i) ? -1 : o.Temperature == 0 ? 0 : samplers[i].Rng.NextDouble();
            return device.Sample(logits, o.Temperature, o.TopP, uniforms);
        }
        var values = logits.ToDoubleArray();
        for (int i = 0; i < rows; i++)
            result[i] = Active(i) ? samplers[i].Next(values.AsSpan(i * vocab, vocab).ToArray(), previous?[i]) : -1;
        return result;
    }

    /// <summary>The index of the largest value (the first of equals).</summary>
    public static int ArgMax<T>(ReadOnlySpan<T> values) where T : System.Numerics.INumber<T>
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }
}
