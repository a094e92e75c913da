using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors.Distributed;

namespace SafeRlhf.Cli.Distributed;

/// <summary>This process's place in a data-parallel job, for the whole driver: the communicator (created on first use,
/// finalised by <see cref="Shutdown"/> when the driver exits) and the rank, known from the launcher's environment
/// before MPI starts so that output can be silenced early. Only rank 0 prints progress and writes run files.</summary>
public static class ProcessRanks
{
    private static ICommunicator? s_comm;

    /// <summary>Environment variables through which launchers announce a process's rank (same order as
    /// <see cref="Communicators.WorldSizeVariables"/>).</summary>
    public static readonly string[] RankVariables = ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"];

    /// <summary>This process's rank as the launcher announced it (0 without a launcher).</summary>
    public static int LaunchedRank
    {
        get
        {
            if (Communicators.LaunchedWorldSize(Environment.GetEnvironmentVariable) == 1) return 0;
            foreach (string name in RankVariables)
                if (int.TryParse(Environment.GetEnvironmentVariable(name), out int rank)) return rank;
            return 0;
        }
    }

    /// <summary>True on the process that prints and writes run files (rank 0, or the only process).</summary>
    public static bool IsWriter => LaunchedRank == 0;

    /// <summary>The job's communicator (MPI under a launcher, else the one-rank local one).</summary>
    public static ICommunicator Comm => s_comm ??= Communicators.FromEnvironment();

    /// <summary>The ranks a training run uses, sharding optimizer state when <paramref name="shardOptimizerState"/>.</summary>
    public static TrainingRanks Training(bool shardOptimizerState) =>
        TrainingRanks.Of(Comm, shardOptimizerState);

    /// <summary>Leaves the job (MPI_Finalize), if it was joined.</summary>
    public static void Shutdown()
    {
        s_comm?.Dispose();
        s_comm = null;
    }
}
