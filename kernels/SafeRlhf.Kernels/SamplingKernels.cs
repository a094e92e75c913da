using ILGPU;
using ILGPU.Algorithms;

namespace SafeRlhf.Kernels;

/// <summary>Next-token sampling over contiguous fp32 logits [Rows, Vocab], one group per row, reproducing the host
/// sampler's arithmetic step by step in fp64 (same order of additions): greedy argmax (lowest id on ties) at
/// temperature 0; otherwise p = exp((l − max)/T) normalised by its sum in id order, the nucleus taken in order of
/// decreasing p (ties by id) until its mass reaches TopP, and the token where u·mass is used up in that order.
/// The uniform u of each row is drawn on the host (the host RNG advances exactly as for host sampling); a row
/// whose u is negative is skipped. Sums run on thread 0 in order (exactly the host's); the nucleus is selected
/// one token at a time by a group arg-max over the tokens not yet taken. Dynamic shared memory: group-size ints.</summary>
public static class SamplingKernels
{
    [Kernel]
    public static void Sample(ArrayView<float> logits, ArrayView<double> probs, ArrayView<int> order, ArrayView<double> uniforms,
        ArrayView<int> tokens, SampleParams p)
    {
        var best = SharedMemory.GetDynamic<int>();
        var shared = SharedMemory.Allocate<double>(2);
        for (int r = Grid.IdxX; r < p.Rows; r += Grid.DimX)
        {
            long row = (long)r * p.Vocab;
            double u = uniforms[r];
            if (u < 0) continue;
            if (p.Temperature == 0)
            {
                int g = ArgBest(logits, probs, row, p.Vocab, -1, byLogits: true, best);
                if (Group.IdxX == 0) tokens[r] = g;
                continue;
            }
            double max = logits[row + ArgBest(logits, probs, row, p.Vocab, -1, byLogits: true, best)];
            for (int i = Group.IdxX; i < p.Vocab; i += Group.DimX) probs[row + i] = XMath.Exp((logits[row + i] - max) / p.Temperature);
            Group.Barrier();
            if (Group.IdxX == 0)
            {
                double sum = 0;
                for (int i = 0; i < p.Vocab; i++) sum += probs[row + i];
                shared[0] = sum;
            }
            Group.Barrier();
            double total = shared[0];
            for (int i = Group.IdxX; i < p.Vocab; i += Group.DimX) probs[row + i] /= total;
            Group.Barrier();
            int keep = p.Vocab;
            if (p.TopP < 1.0) keep = Nucleus(logits, probs, order, row, p, best, shared);
            if (Group.IdxX == 0) tokens[r] = Draw(probs, order, row, keep, p.TopP < 1.0, u);
            Group.Barrier();
        }
    }

    /// <summary>Takes tokens in order of decreasing probability into order[row..] until their mass reaches TopP;
    /// returns how many were taken (uniform across the group).</summary>
    private static int Nucleus(ArrayView<float> logits, ArrayView<double> probs, ArrayView<int> order, long row, SampleParams p,
        ArrayView<int> best, ArrayView<double> shared)
    {
        int keep = 0, previous = -1;
        double cumulative = 0;
        while (keep < p.Vocab && cumulative < p.TopP)
        {
            int next = ArgBest(logits, probs, row, p.Vocab, previous, byLogits: false, best);
            if (Group.IdxX == 0)
            {
                order[row + keep] = next;
                shared[1] = cumulative + probs[row + next];
            }
            Group.Barrier();
            cumulative = shared[1];
            Group.Barrier();
            previous = next;
            keep++;
        }
        return keep;
    }

    /// <summary>Thread 0: the token where u·mass runs out, walking the kept tokens in order (the host's loop).</summary>
    private static int Draw(ArrayView<double> probs, ArrayView<int> order, long row, int keep, bool sorted, double u)
    {
        double mass = 0;
        for (int i = 0; i < keep; i++) mass += probs[row + (sorted ? order[row + i] : i)];
        double rem = u * mass;
        for (int i = 0; i < keep; i++)
        {
            int id = sorted ? order[row + i] : i;
            rem -= probs[row + id];
            if (rem <= 0) return id;
        }
        return sorted ? order[row + keep - 1] : keep - 1;
    }

    /// <summary>a comes before b: larger value first, lower id on ties.</summary>
    private static bool Before(double va, int a, double vb, int b) => va > vb || (va == vb && a < b);

    /// <summary>The first token (by <see cref="Before"/>, on logits or on probabilities) among those that come after
    /// <paramref name="after"/> (all when −1), returned to every thread of the group.</summary>
    private static int ArgBest(ArrayView<float> logits, ArrayView<double> probs, long row, int vocab, int after, bool byLogits,
        ArrayView<int> best)
    {
        double va = after < 0 ? 0 : byLogits ? logits[row + after] : probs[row + after];
        int mine = -1;
        double vm = 0;
        for (int i = Group.IdxX; i < vocab; i += Group.DimX)
        {
            double v = byLogits ? logits[row + i] : probs[row + i];
            if (after >= 0 && !Before(va, after, v, i)) continue;
            if (mine < 0 || Before(v, i, vm, mine))
            {
                mine = i;
                vm = v;
            }
        }
        best[Group.IdxX] = mine;
        Group.Barrier();
        for (int stride = Group.DimX / 2; stride > 0; stride /= 2)
        {
            if (Group.IdxX < stride)
            {
                int other = best[Group.IdxX + stride];
                if (other >= 0)
                {
                    double vo = byLogits ? logits[row + other] : probs[row + other];
                    if (mine < 0 || Before(vo, other, vm, mine))
                    {
                        mine = other;
                        vm = vo;
                        best[Group.IdxX] = mine;
                    }
                }
            }
            Group.Barrier();
        }
        int result = best[0];
        Group.Barrier();
        return result;
    }
}

/// <summary>Rows × Vocab logits; Temperature 0 is greedy; TopP in (0, 1].</summary>
public readonly struct SampleParams
{
    public readonly int Rows, Vocab;
    public readonly double Temperature, TopP;

    public SampleParams(int rows, int vocab, double temperature, double topP)
    {
        Rows = rows; Vocab = vocab; Temperature = temperature; TopP = topP;
    }
}
