namespace SafeRlhf.Rlhf.Math;

/// <summary>The PPO-Lagrangian multiplier λ ≥ 0, kept as ln λ and updated by plain gradient descent on
/// −λ·(J_c − d), where J_c is the mean of a sliding window of the most recent episode costs:
/// <code>
/// ln λ ← ln λ + lr · λ · (J_c − d);   ln λ ← min(ln λ, ln λ_max)
/// </code>
/// λ rises while the policy's cost exceeds the threshold d and falls when it is below.</summary>
public sealed class LagrangeMultiplier
{
    /// <summary>The reference window of episode costs (128 episodes).</summary>
    public const int DefaultWindowSize = 128;

    private readonly Queue<double> _window = new();

    /// <param name="lambdaInit">λ before the first update (must be positive).</param>
    /// <param name="learningRate">step size of the SGD update of ln λ.</param>
    /// <param name="threshold">cost bound d.</param>
    /// <param name="lambdaMax">upper bound of λ, or null for none.</param>
    /// <param name="windowSize">number of most recent episode costs averaged into J_c.</param>
    public LagrangeMultiplier(double lambdaInit = 1.0, double learningRate = 0.1, double threshold = 0.0,
        double? lambdaMax = 5.0, int windowSize = DefaultWindowSize)
    {
        if (!(lambdaInit > 0) || !double.IsFinite(lambdaInit))
            throw new ArgumentOutOfRangeException(nameof(lambdaInit), lambdaInit, "λ_init must be positive and finite");
        if (lambdaMax is { } max && !(max > 0))
            throw new ArgumentOutOfRangeException(nameof(lambdaMax), lambdaMax, "λ_max must be positive");
        if (windowSize < 1)
            throw new ArgumentOutOfRangeException(nameof(windowSize), windowSize, "the window holds at least one cost");
        LearningRate = learningRate;
        Threshold = threshold;
        LambdaMax = lambdaMax;
        WindowSize = windowSize;
        LogLambda = double.Log(lambdaInit);
        if (lambdaMax is { } m) LogLambda = double.Min(LogLambda, double.Log(m));
    }

    /// <summary>ln λ.</summary>
    public double LogLambda { get; private set; }

    /// <summary>λ = exp(ln λ).</summary>
    public double Lambda => double.Exp(LogLambda);

    public double LearningRate { get; }
    public double Threshold { get; }
    public double? LambdaMax { get; }
    public int WindowSize { get; }

    /// <summary>The episode costs in the window, oldest first.</summary>
    public IReadOnlyCollection<double> Window => _window;

    /// <summary>J_c: the mean of the costs in the window (undefined while the window is empty).</summary>
    public double EpisodeCostMean
    {
        get
        {
            if (_window.Count == 0) throw new InvalidOperationException("no episode cost has been recorded");
            double sum = 0;
            foreach (double c in _window) sum += c;
            return sum / _window.Count;
        }
    }

    /// <summary>Appends the costs C(x,y) of new episodes, dropping the oldest beyond the window size.</summary>
    public void AddEpisodeCosts(IEnumerable<double> costs)
    {
        ArgumentNullException.ThrowIfNull(costs);
        foreach (double c in costs)
        {
            if (!double.IsFinite(c)) throw new ArgumentException($"episode cost {c} is not finite", nameof(costs));
            _window.Enqueue(c);
            if (_window.Count > WindowSize) _window.Dequeue();
        }
    }

    /// <summary>Puts the multiplier back where a saved run left it: ln λ and the window of episode costs, oldest first.</summary>
    public void Restore(double logLambda, IEnumerable<double> window)
    {
        ArgumentNullException.ThrowIfNull(window);
        if (!double.IsFinite(logLambda)) throw new ArgumentOutOfRangeException(nameof(logLambda), logLambda, "ln λ must be finite");
        if (LambdaMax is { } max && logLambda > double.Log(max))
            throw new ArgumentOutOfRangeException(nameof(logLambda), logLambda, $"λ = exp({logLambda}) exceeds λ_max = {max}");
        var costs = window.ToList();
        if (costs.Count > WindowSize)
            throw new ArgumentException($"{costs.Count} episode costs do not fit a window of {WindowSize}", nameof(window));
        _window.Clear();
        AddEpisodeCosts(costs);
        LogLambda = logLambda;
    }

    /// <summary>One SGD step of ln λ on the current window; returns J_c used by the step.</summary>
    public double Update()
    {
        double episodeCost = EpisodeCostMean;
        // d/d(ln λ) of −λ·(J_c − d) is −λ·(J_c − d); descending it adds lr·λ·(J_c − d).
        LogLambda += LearningRate * Lambda * (episodeCost - Threshold);
        if (LambdaMax is { } max) LogLambda = double.Min(LogLambda, double.Log(max));
        return episodeCost;
    }
}
