using SafeRlhf.Tensors;

namespace SafeRlhf.Llama.Loading;

/// <summary>One copy of each frozen base matrix for every model loaded from the same file: loading a matrix that
/// stays frozen (kept as stored F16/BF16/Q8_0/Q4_0, or quantized on load) a second time returns a new view of the
/// first copy's storage. The cache owns the first copies; each model owns its views, so the storage is freed when the
/// cache and every model that uses it are disposed. Only frozen matrices are shared: nothing writes into them.</summary>
public sealed class FrozenWeightCache : IDisposable
{
    private readonly Dictionary<(string File, string Tensor, DType Type), Tensor> _tensors = new();
    private bool _disposed;

    /// <summary>Distinct matrices held.</summary>
    public int Count => _tensors.Count;

    /// <summary>A view of the cached matrix, made with <paramref name="load"/> the first time it is asked for.</summary>
    public Tensor Share(string file, string tensor, DType type, Func<Tensor> load)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var key = (Path.GetFullPath(file), tensor, type);
        if (!_tensors.TryGetValue(key, out var first))
        {
            using var suspend = TensorScope.Suspend();
            first = load();
            _tensors[key] = first;
        }
        return first.Detach();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
    }
}
