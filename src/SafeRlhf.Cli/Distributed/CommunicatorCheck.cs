using SafeRlhf.Tensors.Distributed;

namespace SafeRlhf.Cli.Distributed;

/// <summary>Runs each collective once on data every rank can predict (rank r contributes r + 1 + i/1000 at index
/// i) and compares with the expected result. Returns the collectives that failed and why (empty when all pass).</summary>
public static class CommunicatorCheck
{
    public static List<(string Name, string? Error)> Run(ICommunicator comm, int n = 1027)
    {
        var failures = new List<(string, string?)>();
        int size = comm.WorldSize, rank = comm.Rank;
        double Value(int r, int i) => r + 1 + i / 1000.0;
        double SumOverRanks(int i) => Enumerable.Range(0, size).Sum(r => Value(r, i));

        var f32 = Enumerable.Range(0, n).Select(i => (float)Value(rank, i)).ToArray();
        comm.AllReduceSum<float>(f32);
        Expect(failures, "all-reduce f32", n, i => f32[i], i => SumOverRanks(i), 1e-5);

        var f64 = Enumerable.Range(0, n).Select(i => Value(rank, i)).ToArray();
        comm.AllReduceSum<double>(f64);
        Expect(failures, "all-reduce f64", n, i => f64[i], i => SumOverRanks(i), 1e-12);

        var b = Enumerable.Range(0, n).Select(i => rank == size - 1 ? (byte)(i * 7) : (byte)0).ToArray();
        comm.Broadcast<byte>(b, size - 1);
        Expect(failures, "broadcast", n, i => b[i], i => (byte)(i * 7), 0);

        var mine = Enumerable.Range(0, n).Select(i => Value(rank, i)).ToArray();
        var all = new double[n * size];
        comm.AllGather<double>(mine, all);
        Expect(failures, "all-gather", n * size, i => all[i], i => Value(i / n, i % n), 0);

        var send = Enumerable.Range(0, n * size).Select(i => Value(rank, i)).ToArray();
        var recv = new double[n];
        comm.ReduceScatterSum<double>(send, recv);
        Expect(failures, "reduce-scatter", n, i => recv[i], i => SumOverRanks(rank * n + i), 1e-12);

        comm.Barrier();
        return failures;
    }

    private static void Expect(List<(string, string?)> failures, string name, int n, Func<int, double> got, Func<int, double> want, double relTol)
    {
        for (int i = 0; i < n; i++)
        {
            double g = got(i), w = want(i);
            if (Math.Abs(g - w) > relTol * Math.Max(1, Math.Abs(w)))
            {
                failures.Add((name, $"element {i}: {g} instead of {w}"));
                return;
            }
        }
    }
}
