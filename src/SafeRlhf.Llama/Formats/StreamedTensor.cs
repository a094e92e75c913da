using SafeRlhf.Tensors;

namespace SafeRlhf.Llama.Formats;

/// <summary>A tensor whose type and shape are known before its bytes exist: streaming writers lay out the header
/// from these, then call <see cref="WriteData"/> once per tensor, in order, so that only one tensor (or a part of one)
/// needs to be in memory at a time.</summary>
/// <param name="Name">Tensor name as it is stored.</param>
/// <param name="DType">Stored element type.</param>
/// <param name="Dims">Row-major dims, outermost first.</param>
/// <param name="WriteData">Writes exactly <see cref="ByteCount"/> bytes to the stream.</param>
public sealed record StreamedTensor(string Name, DType DType, int[] Dims, Action<Stream> WriteData)
{
    /// <summary>Bytes the tensor occupies in the file.</summary>
    public long ByteCount => RawTensor.ByteCount(DType, Dims);

    /// <summary>Calls <see cref="WriteData"/> and checks that it wrote exactly <see cref="ByteCount"/> bytes.</summary>
    internal void WriteChecked(Stream stream)
    {
        long start = stream.Position;
        WriteData(stream);
        long written = stream.Position - start;
        if (written != ByteCount)
            throw new InvalidOperationException($"tensor '{Name}' {DType} [{string.Join(", ", Dims)}] wrote {written} bytes, its header entry says {ByteCount}");
    }
}
