namespace SafeRlhf.Tensors;

public sealed partial class Tensor
{
    /// <summary>A contiguous tensor whose contents are undefined until the caller writes every element: the
    /// backend skips zeroing when it can (<see cref="IUninitializedAllocator"/>); others return zeros.</summary>
    public static Tensor Uninitialized(Device device, DType dtype, params int[] dims)
    {
        var shape = new Shape(dims);
        var storage = device.Backend is IUninitializedAllocator a
            ? a.AllocateUninitialized(dtype, shape.Numel)
            : device.Backend.Allocate(dtype, shape.Numel);
        return new Tensor(storage, shape, 0, dtype, device, addRef: false);
    }
}
