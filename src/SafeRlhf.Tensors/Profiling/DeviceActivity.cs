namespace SafeRlhf.Tensors.Profiling;

/// <summary>How often a backend stalled the host or touched the device, counted since the backend was created.
/// <see cref="Synchronizations"/> counts every wait of the host for the device's queued work (explicit
/// synchronisations and the wait of each readback); <see cref="Launches"/> kernel launches; <see cref="Memsets"/>
/// device memsets; <see cref="Uploads"/> host→device and <see cref="Readbacks"/> device→host copies.</summary>
public readonly record struct DeviceActivity(long Synchronizations, long Launches, long Memsets, long Uploads, long Readbacks)
{
    public static DeviceActivity operator -(DeviceActivity a, DeviceActivity b) =>
        new(a.Synchronizations - b.Synchronizations, a.Launches - b.Launches, a.Memsets - b.Memsets,
            a.Uploads - b.Uploads, a.Readbacks - b.Readbacks);

    public override string ToString() =>
        $"{Synchronizations} syncs, {Launches} launches, {Memsets} memsets, {Uploads} uploads, {Readbacks} readbacks";
}

/// <summary>A backend that queues work on a device and counts its <see cref="DeviceActivity"/>.</summary>
public interface IDeviceActivitySource
{
    /// <summary>The counters so far (monotonic; subtract two snapshots for a region).</summary>
    DeviceActivity Activity { get; }
}
