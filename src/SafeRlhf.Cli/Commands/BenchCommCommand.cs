using System.CommandLine;
using System.Diagnostics;
using SafeRlhf.Cli.Distributed;
using SafeRlhf.Tensors.Distributed;

namespace SafeRlhf.Cli.Commands;

/// <summary>`saferlhf bench-comm`: checks every collective of this job's communicator against values each rank can
/// compute on its own, then times all-reduce at growing sizes (bus bandwidth as nccl-tests defines it:
/// 2 (N − 1) / N · bytes / time). Run it under the launcher a training job will use: `mpirun -np 2 saferlhf bench-comm`.</summary>
public static class BenchCommCommand
{
    public static Command Create()
    {
        var quick = new Option<bool>("--quick") { Description = "Sizes up to 1 MiB and fewer repetitions (seconds)" };
        var command = new Command("bench-comm", "Check the collectives between the ranks of an MPI job (mpirun/srun) and time all-reduce") { quick };
        command.SetAction(parse => CliRunner.Run(parse, () =>
        {
            using var comm = Communicators.FromEnvironment();
            var failures = CommunicatorCheck.Run(comm);
            if (comm.Rank == 0)
            {
                Console.WriteLine($"ranks {comm.WorldSize} · transport {comm.Transport}");
                foreach (var (name, error) in failures.Count == 0 ? [("all collectives", (string?)null)] : failures)
                    Console.WriteLine(error is null ? $"{name,-20} verified" : $"{name,-20} FAILED: {error}");
            }
            if (failures.Count > 0) return CliRunner.InternalError;
            Time(comm, parse.GetValue(quick));
            return 0;
        }));
        return command;
    }

    private static void Time(ICommunicator comm, bool quick)
    {
        long largest = quick ? 1 << 20 : 64 << 20;
        if (comm.Rank == 0) Console.WriteLine($"{"bytes",12} {"µs / all-reduce",16} {"bus GB/s",9}");
        for (long bytes = 4096; bytes <= largest; bytes *= 4)
        {
            var data = new float[bytes / sizeof(float)];
            comm.AllReduceSum<float>(data);  // warm-up
            int reps = quick ? 5 : Math.Max(5, (int)Math.Min(200, (256L << 20) / bytes));
            comm.Barrier();
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < reps; i++) comm.AllReduceSum<float>(data);
            double seconds = clock.Elapsed.TotalSeconds / reps;
            double bus = comm.WorldSize == 1 ? 0 : 2.0 * (comm.WorldSize - 1) / comm.WorldSize * bytes / seconds / 1e9;
            if (comm.Rank == 0) Console.WriteLine($"{bytes,12} {seconds * 1e6,16:F1} {bus,9:F2}");
        }
    }
}
