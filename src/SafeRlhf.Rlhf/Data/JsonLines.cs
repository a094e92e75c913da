using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace SafeRlhf.Rlhf.Data;

/// <summary>A row of a JSON-lines file that does not have the expected form (the reason, without file and line).</summary>
internal sealed class RowFormatException(string reason) : Exception(reason);

/// <summary>Reads JSON-lines files (plain or gzip, recognised by its magic bytes) one object per non-blank line,
/// and typed fields of those objects.</summary>
internal static class JsonLines
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Parses every non-blank line with <paramref name="parse"/>. A line that is not a JSON object, or for which
    /// <paramref name="parse"/> throws <see cref="RowFormatException"/>, throws <see cref="DatasetFormatException"/>
    /// naming the file and the 1-based line, or is skipped and recorded when <paramref name="skipMalformed"/> is set.</summary>
    public static DatasetReadResult<T> Read<T>(string path, bool skipMalformed, Func<JsonElement, int, T> parse)
    {
        ArgumentNullException.ThrowIfNull(path);
        var rows = new List<T>();
        var skipped = new List<int>();
        Stream stream;
        try
        {
            stream = OpenRead(path);
        }
        catch (InvalidDataException e)
        {
            throw new DatasetFormatException(path, 0, e.Message, e);
        }
        using var owned = stream;
        using var lines = Lines(stream).GetEnumerator();
        int lineNumber = 0;
        while (true)
        {
            try
            {
                if (!lines.MoveNext()) break;
            }
            catch (InvalidDataException e)
            {
                // Compressed data that cannot be decompressed (corrupt or truncated gzip).
                throw new DatasetFormatException(path, lineNumber + 1, $"corrupt gzip data: {e.Message}", e);
            }
            var bytes = lines.Current;
            lineNumber++;
            try
            {
                string line = StrictUtf8.GetString(bytes.Span);
                if (string.IsNullOrWhiteSpace(line)) continue;
                using var document = JsonDocument.Parse(line);
                if (document.RootElement.ValueKind != JsonValueKind.Object)
                    throw new RowFormatException($"expected a JSON object, found {document.RootElement.ValueKind}");
                rows.Add(parse(document.RootElement, lineNumber));
            }
            catch (Exception e) when (e is JsonException or RowFormatException or DecoderFallbackException or InvalidOperationException)
            {
                if (!skipMalformed)
                {
                    string reason = e switch
                    {
                        JsonException => $"invalid JSON: {e.Message}",
                        DecoderFallbackException => "the line is not valid UTF-8",
                        InvalidOperationException => $"a key or string is not valid Unicode ({e.Message})",
                        _ => e.Message,
                    };
                    throw new DatasetFormatException(path, lineNumber, reason, e);
                }
                skipped.Add(lineNumber);
            }
        }
        return new DatasetReadResult<T>(rows, skipped);
    }

    /// <summary>The file's bytes, decompressed if it starts with the gzip magic 1f 8b (checked against the gzip trailer:
    /// a truncated file throws <see cref="InvalidDataException"/> at its end).</summary>
    public static Stream OpenRead(string path)
    {
        var file = File.OpenRead(path);
        try
        {
            Span<byte> magic = stackalloc byte[2];
            int read = file.ReadAtLeast(magic, 2, throwOnEndOfStream: false);
            file.Position = 0;
            return read == 2 && magic[0] == 0x1f && magic[1] == 0x8b
                ? new BufferedStream(CheckedGzipStream.Open(file), 1 << 16)
                : file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The lines of a stream as raw bytes, split at '\n' with a trailing '\r' removed and a leading UTF-8
    /// byte-order mark dropped. Lines are decoded one at a time so that a bad byte is reported on its own line.</summary>
    public static IEnumerable<ReadOnlyMemory<byte>> Lines(Stream stream)
    {
        var chunk = new byte[1 << 16];
        var line = new MemoryStream();
        bool first = true;
        int read;
        while ((read = stream.Read(chunk, 0, chunk.Length)) > 0)
        {
            int from = 0;
            while (from < read)
            {
                int newline = Array.IndexOf(chunk, (byte)'\n', from, read - from);
                int end = newline < 0 ? read : newline;
                line.Write(chunk, from, end - from);
                from = end + 1;
                if (newline < 0) break;
                yield return Finish(line, ref first);
                line = new MemoryStream();
            }
        }
        if (line.Length > 0) yield return Finish(line, ref first);
    }

    private static ReadOnlyMemory<byte> Finish(MemoryStream line, ref bool first)
    {
        var bytes = line.GetBuffer().AsMemory(0, (int)line.Length);
        if (first && bytes.Span.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) bytes = bytes[3..];
        first = false;
        if (bytes.Span.EndsWith((ReadOnlySpan<byte>)[(byte)'\r'])) bytes = bytes[..^1];
        return bytes;
    }

    public static JsonElement Required(JsonElement row, string name) =>
        row.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null
            ? value
            : throw new RowFormatException($"missing required field '{name}'");

    public static string String(JsonElement row, string name)
    {
        var value = Required(row, name);
        return value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw new RowFormatException($"field '{name}' must be a string, found {value.ValueKind}");
    }

    public static string? OptionalString(JsonElement row, string name)
    {
        if (!row.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        return value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : throw new RowFormatException($"field '{name}' must be a string, found {value.ValueKind}");
    }

    public static bool Bool(JsonElement row, string name)
    {
        var value = Required(row, name);
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new RowFormatException($"field '{name}' must be true or false, found {value.ValueKind}"),
        };
    }

    public static int Int(JsonElement row, string name)
    {
        var value = Required(row, name);
        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int n)
            ? n
            : throw new RowFormatException($"field '{name}' must be an integer, found {value.GetRawText()}");
    }

    /// <summary>An object whose every value is a boolean, in file order.</summary>
    public static IReadOnlyDictionary<string, bool> BoolMap(JsonElement row, string name)
    {
        var value = Required(row, name);
        if (value.ValueKind != JsonValueKind.Object)
            throw new RowFormatException($"field '{name}' must be an object of booleans, found {value.ValueKind}");
        var map = new Dictionary<string, bool>(StringComparer.Ordinal);
        foreach (var property in value.EnumerateObject())
        {
            bool flag = property.Value.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new RowFormatException($"'{name}.{property.Name}' must be true or false, found {property.Value.ValueKind}"),
            };
            if (!map.TryAdd(property.Name, flag))
                throw new RowFormatException($"'{name}' repeats the key '{property.Name}'");
        }
        return map;
    }
}
