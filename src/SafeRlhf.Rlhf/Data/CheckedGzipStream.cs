using System.Buffers.Binary;
using System.IO.Compression;

namespace SafeRlhf.Rlhf.Data;

/// <summary>Decompresses a gzip file and, at its end, checks the decompressed length against the gzip trailer (ISIZE,
/// the length modulo 2^32), because <see cref="GZipStream"/> ends quietly on a truncated file. Corrupt data or a
/// length that does not match throws <see cref="InvalidDataException"/>. A file of several concatenated gzip members
/// is checked against the total length, so it fails this check: decompress and recompress it as one member.</summary>
internal sealed class CheckedGzipStream : Stream
{
    private readonly GZipStream _inner;
    private readonly uint _expectedLength;
    private long _length;
    private bool _checked;

    private CheckedGzipStream(GZipStream inner, uint expectedLength)
    {
        _inner = inner;
        _expectedLength = expectedLength;
    }

    /// <summary>Wraps <paramref name="file"/> (positioned at the gzip magic), which the stream then owns.</summary>
    public static CheckedGzipStream Open(FileStream file)
    {
        // Header (10 bytes), at least one deflate byte, CRC32 and ISIZE (8 bytes).
        if (file.Length < 19) throw new InvalidDataException($"gzip file of {file.Length} bytes is truncated");
        Span<byte> trailer = stackalloc byte[4];
        file.Position = file.Length - 4;
        file.ReadExactly(trailer);
        file.Position = 0;
        return new CheckedGzipStream(new GZipStream(file, CompressionMode.Decompress), BinaryPrimitives.ReadUInt32LittleEndian(trailer));
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        int n = _inner.Read(buffer);
        _length += n;
        if (n == 0 && buffer.Length > 0 && !_checked)
        {
            _checked = true;
            if ((uint)_length != _expectedLength)
                throw new InvalidDataException(
                    $"gzip data ends after {_length} decompressed bytes, the trailer records {_expectedLength} (the file is truncated or damaged)");
        }
        return n;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => _length;
        set => throw new NotSupportedException();
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) _inner.Dispose();
        base.Dispose(disposing);
    }
}
