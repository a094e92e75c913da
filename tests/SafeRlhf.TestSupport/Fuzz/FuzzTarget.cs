namespace SafeRlhf.TestSupport.Fuzz;

/// <summary>One reader under fuzzing. <see cref="Seed"/> returns the path of a real seed file (from the shared assets,
/// or built from them); each mutated input is written as <see cref="FileName"/> (a path relative to a work folder that
/// first receives a copy of <see cref="Template"/>, e.g. the rest of a checkpoint folder). <see cref="Read"/> gets the
/// mutated file's path, or the work folder when <see cref="ReadFolder"/> is set, and must return normally or throw an
/// exception that <see cref="IsTyped"/> accepts.</summary>
public sealed record FuzzTarget(string Name, FuzzInputKind Kind, Func<string> Seed, string FileName, Action<string> Read, Func<Exception, bool> IsTyped)
{
    /// <summary>A folder copied (with its subfolders) into the work folder once, before the mutated file is written into
    /// it: e.g. the shards beside a mutated config.json. Null: none.</summary>
    public Func<string>? Template { get; init; }

    /// <summary>Pass the work folder instead of the mutated file to <see cref="Read"/>.</summary>
    public bool ReadFolder { get; init; }

    /// <summary>Allocation bound per input: this many times the input's size, plus <see cref="AllocationSlackBytes"/>.</summary>
    public double AllocationFactor { get; init; } = 64;

    /// <summary>Constant part of the allocation bound.</summary>
    public long AllocationSlackBytes { get; init; } = 64L << 20;

    /// <summary>Inputs per run when SAFERLHF_FUZZ_INPUTS is not set (the short CI run).</summary>
    public int DefaultInputs { get; init; } = 1000;

    /// <inheritdoc/>
    public override string ToString() => Name;
}
