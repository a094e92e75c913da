namespace SafeRlhf.TestSupport.Fuzz;

/// <summary>How one fuzzed input ended.</summary>
public enum FuzzOutcome
{
    /// <summary>The reader accepted it (and, for models, a forward pass ran).</summary>
    Accepted,
    /// <summary>The reader refused it with the project's typed exception.</summary>
    Refused,
    /// <summary>Any other exception: a defect.</summary>
    Untyped,
    /// <summary>It ran past the time limit: a defect.</summary>
    Hung,
    /// <summary>It allocated more than the bound proportional to its size: a defect.</summary>
    Bloated,
}
