using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Tensors;

/// <summary>An n-dimensional view over device <see cref="Storage"/>. Ownership: a tensor has one owner (the code
/// that made it, or the <see cref="TensorScope"/> it was made in), and it dies when that owner disposes it, unless a
/// recorded backward rule still needs its data: then it dies right after that rule has run. Dying drops the view's
/// reference to its storage; the memory is freed when the last view of it dies. See docs/MEMORY.md.
/// Views (Reshape of contiguous data, Transpose, Narrow, Slice, Expand) share storage without copying.</summary>
public sealed partial class Tensor : IDisposable
{
    private bool _disposed;

    internal Tensor(Storage storage, Shape shape, long offset, DType dtype, Device device, bool addRef)
    {
        if (addRef) storage.AddRef();
        Storage = storage;
        Shape = shape;
        Offset = offset;
        DType = dtype;
        Device = device;
        TensorScope.Register(this);
    }

    /// <summary>The storage this view reads.</summary>
    public Storage Storage { get; }
    /// <summary>Dims and element strides of this view.</summary>
    public Shape Shape { get; }
    /// <summary>Offset of element [0, .., 0] in the storage, in elements (in blocks × 32 for quantized types).</summary>
    public long Offset { get; }
    public DType DType { get; }
    public Device Device { get; }
    public IBackend Backend => Device.Backend;
    public int Rank => Shape.Rank;
    public long Numel => Shape.Numel;
    public bool IsContiguous => Shape.IsContiguous;
    public int Dim(int axis) => Shape[axis];
    /// <summary>Whether this tensor has died (its data can no longer be read).</summary>
    public bool IsDisposed => _disposed;

    /// <summary>Whether gradients are tracked for this tensor (leaves: parameters; others: set by ops).</summary>
    public bool RequiresGrad { get; set; }
    /// <summary>Accumulated gradient of a leaf after <see cref="Backward"/> (owned by this tensor).</summary>
    public Tensor? Grad { get; internal set; }
    /// <summary>The op that produced this tensor, when recorded on the tape.</summary>
    internal GradNode? Node { get; set; }
    /// <summary>Name for error messages and checkpoints (e.g. "layers.0.attention.wq.weight").</summary>
    public string? Name { get; set; }

    /// <summary>Releases the owner's hold (the creator's, or its <see cref="TensorScope"/>'s; calling it again does
    /// nothing). The tensor dies when its owner has released it and no recorded backward rule still holds it.</summary>
    public void Dispose()
    {
        if (_ownerReleased) return;
        _ownerReleased = true;
        if (_tapeHolds == 0) Free();
    }

    private bool _ownerReleased;
    private int _tapeHolds;

    /// <summary>A recorded backward rule needs this tensor's data: it lives at least until <see cref="ReleaseFromTape"/>.</summary>
    internal void RetainForTape()
    {
        ThrowIfDisposed("Record");
        _tapeHolds++;
    }

    /// <summary>The backward rule that retained this tensor has run (or its graph was dropped).</summary>
    internal void ReleaseFromTape()
    {
        if (_tapeHolds <= 0) throw new InvalidOperationException($"tensor {Name ?? Shape.ToString()} released by the tape more often than retained");
        if (--_tapeHolds == 0 && _ownerReleased) Free();
    }

    private void Free()
    {
        if (_disposed) return;
        _disposed = true;
        Grad?.Dispose();
        Grad = null;
        Storage.Release();
    }

    internal void ThrowIfDisposed(string op)
    {
        if (_disposed) throw new ObjectDisposedException(nameof(Tensor), $"{op}: tensor {Name ?? Shape.ToString()} was disposed");
    }

    public override string ToString() => $"Tensor{Shape} {DType} on {Device.Name}" + (Name is null ? "" : $" '{Name}'");

    // ---------------- creation ----------------

    /// <summary>A zero-filled contiguous tensor.</summary>
    public static Tensor Zeros(Device device, DType dtype, params int[] dims)
    {
        var shape = new Shape(dims);
        var storage = device.Backend.Allocate(dtype, shape.Numel);
        return new Tensor(storage, shape, 0, dtype, device, addRef: false);
    }

    /// <summary>A contiguous tensor holding <paramref name="data"/> (row-major).</summary>
    public static Tensor FromArray<T>(Device device, ReadOnlySpan<T> data, params int[] dims) where T : unmanaged
    {
        DType dtype = DTypeOf<T>();
        var shape = new Shape(dims);
        if (shape.Numel != data.Length)
            throw new TensorShapeException($"FromArray: {data.Length} values do not fill shape {shape}");
        var t = Uninitialized(device, dtype, dims);
        device.Backend.Write(t.Storage, 0, MemoryMarshal.AsBytes(data));
        return t;
    }

    public static Tensor FromArray(Device device, float[] data, params int[] dims) => FromArray<float>(device, data, dims);
    public static Tensor FromArray(Device device, double[] data, params int[] dims) => FromArray<double>(device, data, dims);
    public static Tensor FromArray(Device device, int[] data, params int[] dims) => FromArray<int>(device, data, dims);

    /// <summary>A tensor of raw storage bytes (quantized or half types), e.g. read from a weight file.</summary>
    public static Tensor FromBytes(Device device, DType dtype, ReadOnlySpan<byte> bytes, params int[] dims)
    {
        var shape = new Shape(dims);
        long expected = dtype.ByteCount(shape.Numel);
        if (expected != bytes.Length)
            throw new TensorShapeException($"FromBytes: {bytes.Length} bytes do not hold {dtype} {shape} ({expected} bytes)");
        var t = Uninitialized(device, dtype, dims);
        device.Backend.Write(t.Storage, 0, bytes);
        return t;
    }

    internal static DType DTypeOf<T>() where T : unmanaged =>
        typeof(T) == typeof(float) ? DType.F32 :
        typeof(T) == typeof(double) ? DType.F64 :
        typeof(T) == typeof(int) ? DType.I32 :
        typeof(T) == typeof(Half) ? DType.F16 :
        throw new TensorDTypeException($"no tensor dtype for {typeof(T).Name}");

    // ---------------- reading back ----------------

    /// <summary>The elements in row-major order, converted to <typeparamref name="T"/>.</summary>
    public T[] ToArray<T>() where T : unmanaged
    {
        ThrowIfDisposed("ToArray");
        DType want = DTypeOf<T>();
        using var c = want == DType && IsContiguous ? null : CastContiguous(want);
        Tensor src = c ?? this;
        var result = new T[src.Numel];
        int size = Unsafe.SizeOf<T>();
        src.Backend.Read(src.Storage, src.Offset * size, MemoryMarshal.AsBytes(result.AsSpan()));
        return result;
    }

    public float[] ToFloatArray() => ToArray<float>();
    public double[] ToDoubleArray() => ToArray<double>();

    /// <summary>The raw storage bytes of a contiguous tensor (any dtype, quantized included).</summary>
    public byte[] ToBytes()
    {
        ThrowIfDisposed("ToBytes");
        if (!IsContiguous) throw new InvalidOperationException($"ToBytes: tensor {Shape} is not contiguous");
        var bytes = new byte[DType.ByteCount(Numel)];
        Backend.Read(Storage, DType.ByteCount(Offset), bytes);
        return bytes;
    }

    /// <summary>The single value of a one-element tensor.</summary>
    public double Item()
    {
        if (Numel != 1) throw new TensorShapeException($"Item: tensor {Shape} has {Numel} elements, not 1");
        return ToArray<double>()[0];
    }

    private Tensor CastContiguous(DType dtype)
    {
        using var _ = GradMode.NoGrad();
        var dst = Uninitialized(Device, dtype, Shape.ToArray()); // every element written by the copy
        Backend.Copy(this, dst);
        return dst;
    }

    // ---------------- autograd entry points ----------------

    /// <summary>Back-propagates from this scalar: accumulates d(this)/d(leaf) into every leaf's Grad.</summary>
    public void Backward() => Tape.Backward(this);

    /// <summary>A view of the same data with no gradient history.</summary>
    public Tensor Detach()
    {
        ThrowIfDisposed("Detach");
        return new Tensor(Storage, Shape, Offset, DType, Device, addRef: true);
    }

    /// <summary>Clears the accumulated gradient.</summary>
    public void ZeroGrad()
    {
        Grad?.Dispose();
        Grad = null;
    }
}
