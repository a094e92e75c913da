using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Tensors.Distributed;

namespace SafeRlhf.Cli.Distributed;

/// <summary>Picks the communicator of this process: MPI when a launcher (mpirun, srun) started several ranks,
/// otherwise the one-rank <see cref="LocalCommunicator"/>, so a plain `saferlhf …` behaves as a single process.</summary>
public static class Communicators
{
    /// <summary>Environment variables through which launchers announce the job's size: Open MPI's mpirun, PMI
    /// (MPICH, srun --mpi=pmi2) and Slurm job steps (srun).</summary>
    public static readonly string[] WorldSizeVariables = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"];

    /// <summary>The number of ranks a launcher announced (1 when none did).</summary>
    public static int LaunchedWorldSize(Func<string, string?> getVariable)
    {
        foreach (string name in WorldSizeVariables)
        {
            string? value = getVariable(name);
            if (string.IsNullOrEmpty(value)) continue;
            if (!int.TryParse(value, out int size) || size < 1)
                throw new CliException($"environment variable {name}='{value}' is not a positive rank count");
            return size;
        }
        return 1;
    }

    /// <summary>The communicator for this process; a multi-rank launch of a build without MPI is refused.</summary>
    public static ICommunicator FromEnvironment()
    {
        int size = LaunchedWorldSize(Environment.GetEnvironmentVariable);
        if (size == 1) return LocalCommunicator.Instance;
        if (!MpiCommunicator.IsAvailable)
            throw new CliException($"this process was launched as one of {size} ranks, but libsaferlhf_native was built without MPI " +
                                   "(install libopenmpi-dev and openmpi-bin, then rebuild), so the ranks cannot communicate");
        var comm = MpiCommunicator.Create();
        if (comm.WorldSize != size)
        {
            comm.Dispose();
            throw new CliException($"the launcher announced {size} ranks but MPI reports {comm.WorldSize}");
        }
        return comm;
    }
}
