using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using SafeRlhf.Tensors;

namespace SafeRlhf.Llama.Formats;

/// <summary>The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
/// (<c>{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}</c>, offsets
/// relative to the end of the header), then the tensor bytes. Reads F64, F32, F16, BF16, I32 and I64 (narrowed to
/// I32, values checked) through a memory mapping; writes atomically.</summary>
public static class Safetensors
{
    /// <summary>Largest header accepted (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    /// <summary>Reads a .safetensors file; tensors are in data-offset order, metadata values are strings.</summary>
    public static WeightFile Read(string path)
    {
        var file = MappedFile.Open(path);
        try
        {
            var (tensors, metadata, consumed) = ReadMapped(file);
            return new WeightFile(path, WeightFileFormat.Safetensors, metadata, tensors, config: null, consumed, file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    internal static (List<RawTensor> Tensors, Dictionary<string, object> Metadata, long Consumed) ReadMapped(MappedFile file)
    {
        string path = file.Path;
        var r = new ByteReader(file) { Context = "header" };
        ulong headerLength = r.ReadUInt64();
        if (headerLength < 2 || headerLength > MaxHeaderBytes || headerLength > (ulong)r.Remaining)
            throw new WeightFormatException(path, null,
                $"not a safetensors file: header length {headerLength} does not fit the file ({file.Length} bytes)");
        var headerBytes = r.Take((long)headerLength);
        long dataStart = r.Position;
        long dataLength = file.Length - dataStart;

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(headerBytes.ToArray());
        }
        catch (JsonException e)
        {
            throw new WeightFormatException(path, null, $"not a safetensors file: the header is not JSON ({e.Message})", e);
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new WeightFormatException(path, null, "not a safetensors file: the header is not a JSON object");
            var metadata = new Dictionary<string, object>(StringComparer.Ordinal);
            var entries = new List<(long Begin, RawTensor Tensor)>();
            long consumed = dataStart;
            int index = 0;
            try
            {
                foreach (var property in doc.RootElement.EnumerateObject())
                {
                    index++;
                    if (property.Name == MetadataKey)
                    {
                        if (property.Value.ValueKind != JsonValueKind.Object)
                            throw new WeightFormatException(path, null, "__metadata__ is not an object");
                        foreach (var m in property.Value.EnumerateObject())
                            metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                        continue;
                    }
                    var (begin, tensor) = ReadEntry(file, property.Name, property.Value, dataStart, dataLength);
                    consumed = Math.Max(consumed, dataStart + begin + StoredBytes(property.Value));
                    entries.Add((begin, tensor));
                }
            }
            catch (InvalidOperationException e)
            {
                // Syntactically valid JSON whose strings are not valid UTF-8 / UTF-16 (a lone surrogate escape).
                throw new WeightFormatException(path, null, $"header entry {index}: a name or string is not valid Unicode ({e.Message})", e);
            }
            var tensors = entries.OrderBy(e => e.Begin).Select(e => e.Tensor).ToList();
            return (tensors, metadata, consumed);
        }
    }

    private static long StoredBytes(JsonElement entry)
    {
        var offsets = entry.GetProperty("data_offsets");
        return offsets[1].GetInt64() - offsets[0].GetInt64();
    }

    private static (long Begin, RawTensor Tensor) ReadEntry(MappedFile file, string name, JsonElement entry, long dataStart, long dataLength)
    {
        string path = file.Path;
        WeightFormatException Bad(string message) => new(path, name, message);

        if (entry.ValueKind != JsonValueKind.Object) throw Bad("header entry is not an object");
        if (!entry.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw Bad("header entry has no dtype");
        if (!entry.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw Bad("header entry has no shape");
        if (!entry.TryGetProperty("data_offsets", out var offsetsElement) || offsetsElement.ValueKind != JsonValueKind.Array ||
            offsetsElement.GetArrayLength() != 2)
            throw Bad("header entry has no data_offsets [begin, end]");

        string dtypeName = dtypeElement.GetString()!;
        var dims = new int[shapeElement.GetArrayLength()];
        int k = 0;
        foreach (var d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out int v) || v < 0) throw Bad($"invalid shape {shapeElement.GetRawText()}");
            dims[k++] = v;
        }
        if (offsetsElement[0].ValueKind != JsonValueKind.Number || offsetsElement[1].ValueKind != JsonValueKind.Number ||
            !offsetsElement[0].TryGetInt64(out long begin) || !offsetsElement[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw Bad($"invalid data_offsets {offsetsElement.GetRawText()}");

        (DType dtype, _) = dtypeName switch
        {
            "F64" => (DType.F64, 8),
            "F32" => (DType.F32, 4),
            "F16" => (DType.F16, 2),
            "BF16" => (DType.BF16, 2),
            "I32" => (DType.I32, 4),
            "I64" => (DType.I32, 8),
            "Q8_0" => (DType.Q8_0, 0),
            "Q4_0" => (DType.Q4_0, 0),
            "Q4_K" => (DType.Q4_K, 0),
            "Q5_K" => (DType.Q5_K, 0),
            "Q6_K" => (DType.Q6_K, 0),
            _ => throw Bad($"unsupported dtype '{dtypeName}' (supported: F64, F32, F16, BF16, I32, I64, and Q8_0, Q4_0, Q4_K, Q5_K, Q6_K in saferlhf checkpoints)"),
        };
        if (dtype.IsQuantized() && (dims.Length == 0 || dims[^1] % dtype.BlockElements() != 0))
            throw Bad($"{dtypeName} [{string.Join(", ", dims)}]: the last dim must be a multiple of {dtype.BlockElements()}");
        if (!RawTensor.TryByteCount(dtype, dims, out long bytes)) throw Bad($"shape {shapeElement.GetRawText()} is too large");
        if (dtypeName == "I64") bytes *= 2;
        if (end - begin != bytes)
            throw Bad($"data_offsets [{begin}, {end}) hold {end - begin} bytes, but {dtypeName} [{string.Join(", ", dims)}] needs {bytes}");
        if (end > dataLength)
            throw Bad($"extends past the end of the file: data bytes [{dataStart + begin}, {dataStart + end}), the file has {file.Length}");
        if (bytes > int.MaxValue) throw Bad($"{bytes} bytes exceed the 2 GiB limit of one tensor");

        var data = file.Memory(dataStart + begin, (int)bytes);
        if (dtypeName == "I64") data = NarrowInt64(path, name, data.Span);
        return (begin, new RawTensor(name, dtype, dims, data));
    }

    private static byte[] NarrowInt64(string path, string name, ReadOnlySpan<byte> src)
    {
        var dst = new byte[src.Length / 2];
        for (int i = 0; i < dst.Length / 4; i++)
        {
            long v = BinaryPrimitives.ReadInt64LittleEndian(src[(8 * i)..]);
            if (v < int.MinValue || v > int.MaxValue)
                throw new WeightFormatException(path, name, $"I64 element {i} = {v} does not fit in I32");
            BinaryPrimitives.WriteInt32LittleEndian(dst.AsSpan(4 * i), (int)v);
        }
        return dst;
    }

    /// <summary>The safetensors dtype string of a <see cref="DType"/>. Q8_0 and Q4_0 (ggml blocks, row-major) are this
    /// engine's extension, used by its checkpoints to keep a frozen quantized base as stored.</summary>
    public static string DTypeName(DType dtype) => dtype switch
    {
        DType.F64 => "F64",
        DType.F32 => "F32",
        DType.F16 => "F16",
        DType.BF16 => "BF16",
        DType.I32 => "I32",
        DType.Q8_0 => "Q8_0",
        DType.Q4_0 => "Q4_0",
        DType.Q4_K => "Q4_K",
        DType.Q5_K => "Q5_K",
        DType.Q6_K => "Q6_K",
        _ => throw new ArgumentException($"{dtype} has no safetensors dtype", nameof(dtype)),
    };

    /// <summary>Writes tensors (in the given order) and string metadata. The file is written to a temporary file in
    /// the same folder, flushed, then moved over <paramref name="path"/>, so readers never see a partial file.</summary>
    public static void Write(string path, IEnumerable<RawTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        WriteStreamed(path, tensors.Select(t => new StreamedTensor(t.Name, t.DType, t.Dims, s => s.Write(t.Data.Span))).ToList(), metadata);

    /// <summary>Writes tensors as they are held (a Q8_0/Q4_0 matrix as its blocks), one at a time, so that only one
    /// tensor's bytes are ever copied to the host at once.</summary>
    public static void WriteTensors(string path, IEnumerable<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var suspend = TensorScope.Suspend();
        using var noGrad = Tensors.Autograd.GradMode.NoGrad();
        WriteStreamed(path, tensors.Select(p => new StreamedTensor(p.Name, p.Tensor.DType, p.Tensor.Shape.ToArray(), s =>
        {
            using var contiguous = p.Tensor.IsContiguous ? null : p.Tensor.Contiguous();
            s.Write((contiguous ?? p.Tensor).ToBytes());
        })).ToList(), metadata);
    }

    /// <summary>Writes tensors whose bytes are produced one at a time (in the given order): the header is laid out from
    /// the names, types and shapes, then each tensor's <see cref="StreamedTensor.WriteData"/> runs once. Written
    /// atomically like <see cref="Write"/>.</summary>
    public static void WriteStreamed(string path, IReadOnlyList<StreamedTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            if (t.Name == MetadataKey) throw new ArgumentException($"'{MetadataKey}' is reserved and cannot name a tensor");
            if (!names.Add(t.Name)) throw new ArgumentException($"tensor name '{t.Name}' occurs twice");
            DTypeName(t.DType);
        }
        byte[] header = BuildHeader(tensors, metadata);
        AtomicFile.Write(path, fs =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            fs.Write(length);
            fs.Write(header);
            foreach (var t in tensors) t.WriteChecked(fs);
        });
    }

    private static byte[] BuildHeader(IReadOnlyList<StreamedTensor> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject(MetadataKey);
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in tensors)
            {
                w.WriteStartObject(t.Name);
                w.WriteString("dtype", DTypeName(t.DType));
                w.WriteStartArray("shape");
                foreach (int d in t.Dims) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + t.ByteCount);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += t.ByteCount;
            }
            w.WriteEndObject();
        }
        // Pad with spaces so that the data starts 8-byte aligned.
        while ((buffer.Length + 8) % 8 != 0) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    /// <summary>Header JSON of a file, for inspection.</summary>
    public static string ReadHeaderJson(string path)
    {
        using var file = MappedFile.Open(path);
        var r = new ByteReader(file) { Context = "header" };
        ulong n = r.ReadUInt64();
        if (n > (ulong)r.Remaining) throw new WeightFormatException(path, null, $"header length {n} does not fit the file");
        return Encoding.UTF8.GetString(r.Take((long)n));
    }
}
