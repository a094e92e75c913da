using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;

namespace SafeRlhf.TestSupport.Fuzz;

/// <summary>Seeded, structure-aware mutations of one seed file. Every kind of input gets bit flips, boundary values in
/// header fields (every 4-byte-aligned field of the first 4 KiB, 4- or 8-byte wide), huge values in fields that hold
/// small counts or dims, truncation, deleted and duplicated chunks. JSON and JSON lines also get numbers replaced by
/// boundary values and other types, invalid UTF-8 and lone surrogate escapes in strings, and (JSON lines) deleted and
/// duplicated lines; gzip inputs get these on the decompressed lines (then recompressed) or the binary ones on the
/// compressed bytes. The same seed file, seed and index give the same input.</summary>
public sealed partial class Mutator
{
    private const int HeaderBytes = 4096;

    private static readonly ulong[] Boundaries =
    [
        0, 1, 2, 3, 7, 8, 255, 256, 258, 259, 65535, 65536, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000,
        0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFE,
    ];

    private static readonly ulong[] HugeCounts = [0x7FFF_FFFF, 0x4000_0000, 0x1000_0000, 0xFFFF_FFFF, 1 << 24, 0x7FFF_FFFF_FFFF_FFFF];

    private static readonly string[] JsonNumberReplacements =
    [
        "0", "-1", "1", "2147483647", "2147483648", "-2147483649", "9223372036854775807", "9223372036854775808",
        "18446744073709551616", "1e400", "-1e400", "1.5", "1e-400", "\"7\"", "null", "true", "[]", "{}", "\"\\ud800\"",
    ];

    private static readonly string[] BinaryKinds =
        ["bit-flip", "boundary-value", "huge-count", "truncate", "delete-chunk", "duplicate-chunk"];

    private static readonly string[] JsonKinds =
        ["bit-flip", "truncate", "delete-chunk", "duplicate-chunk", "json-number", "json-lone-surrogate", "json-invalid-utf8", "json-empty-string", "json-huge-number"];

    private static readonly string[] JsonLinesKinds = [.. JsonKinds, "line-delete", "line-duplicate"];

    private readonly byte[] _seed;
    private readonly FuzzInputKind _kind;
    private readonly int[] _smallFields;
    private readonly (int Start, int Length)[] _numbers;
    private readonly (int Start, int Length)[] _strings;
    private readonly int[] _lineStarts;
    private readonly Mutator? _decompressed;
    private readonly Mutator? _compressed;

    /// <summary>Prepares mutations of <paramref name="seed"/> (field and token positions are found once).</summary>
    public Mutator(byte[] seed, FuzzInputKind kind)
    {
        _seed = seed;
        _kind = kind;
        if (kind == FuzzInputKind.GzipJsonLines)
        {
            using var gz = new GZipStream(new MemoryStream(seed), CompressionMode.Decompress);
            using var plain = new MemoryStream();
            gz.CopyTo(plain);
            _decompressed = new Mutator(plain.ToArray(), FuzzInputKind.JsonLines);
            _compressed = new Mutator(seed, FuzzInputKind.Binary);
        }
        var fields = new List<int>();
        for (int at = 0; at + 4 <= Math.Min(seed.Length, HeaderBytes); at += 4)
        {
            uint v = BinaryPrimitives.ReadUInt32LittleEndian(seed.AsSpan(at));
            if (v is >= 1 and <= 1 << 20) fields.Add(at);
        }
        _smallFields = [.. fields];
        if (kind is FuzzInputKind.Json or FuzzInputKind.JsonLines)
        {
            string text = Encoding.Latin1.GetString(seed);
            _strings = StringToken().Matches(text).Select(m => (m.Index, m.Length)).ToArray();
            _numbers = NumberToken().Matches(text).Select(m => (m.Index, m.Length)).ToArray();
            var starts = new List<int> { 0 };
            for (int i = 0; i < seed.Length - 1; i++)
                if (seed[i] == (byte)'\n') starts.Add(i + 1);
            _lineStarts = [.. starts];
        }
        else
        {
            _strings = _numbers = [];
            _lineStarts = [0];
        }
    }

    /// <summary>The mutation kinds applied to this kind of input.</summary>
    public static IReadOnlyList<string> Kinds(FuzzInputKind kind) => kind switch
    {
        FuzzInputKind.Binary => BinaryKinds,
        FuzzInputKind.Json => JsonKinds,
        FuzzInputKind.JsonLines => JsonLinesKinds,
        _ => [.. BinaryKinds.Select(k => "gzip-" + k), .. JsonLinesKinds],
    };

    /// <summary>Input number <paramref name="index"/> of the run with <paramref name="seed"/>: kinds in turn (so that
    /// every kind is exercised), parameters from a generator seeded by both numbers; one input in four gets a second
    /// mutation on top.</summary>
    public byte[] Mutate(int seed, int index, out string description)
    {
        var rng = new Random(HashCode.Combine(seed, index, 0x5afe));
        var kinds = Kinds(_kind);
        string kind = kinds[index % kinds.Count];
        byte[] result = Apply(kind, rng);
        description = kind;
        if (rng.Next(4) == 0)
        {
            string second = kinds[rng.Next(kinds.Count)];
            if (!second.StartsWith("gzip-", StringComparison.Ordinal) && _kind != FuzzInputKind.GzipJsonLines)
            {
                result = new Mutator(result, _kind).Apply(second, rng);
                description += "+" + second;
            }
        }
        return result;
    }

    private byte[] Apply(string kind, Random rng)
    {
        if (_decompressed is not null)
        {
            if (kind.StartsWith("gzip-", StringComparison.Ordinal)) return _compressed!.Apply(kind["gzip-".Length..], rng);
            return Compress(_decompressed.Apply(kind, rng));
        }
        return kind switch
        {
            "boundary-value" => BoundaryValue(rng),
            "huge-count" => HugeCount(rng),
            "json-number" => ReplaceNumber(rng, JsonNumberReplacements[rng.Next(JsonNumberReplacements.Length)]),
            "json-huge-number" => ReplaceNumber(rng, rng.Next(2) == 0 ? "4294967296" : "99999999999999999999999"),
            "json-lone-surrogate" => EditString(rng, Encoding.ASCII.GetBytes(rng.Next(2) == 0 ? "\\ud800" : "\\udfff\\ud800")),
            "json-invalid-utf8" => EditString(rng, rng.Next(3) switch { 0 => [0xFF], 1 => [0xC3], _ => [0xED, 0xA0, 0x80] }),
            "json-empty-string" => ReplaceString(rng),
            "line-delete" => LineEdit(rng, duplicate: false),
            "line-duplicate" => LineEdit(rng, duplicate: true),
            _ => Binary(_seed, kind, rng),
        };
    }

    private static byte[] Binary(byte[] seed, string kind, Random rng)
    {
        var b = (byte[])seed.Clone();
        if (b.Length == 0) return b;
        switch (kind)
        {
            case "bit-flip":
            {
                int flips = 1 + rng.Next(8);
                // Half of the flips land in the header, where they matter most.
                for (int i = 0; i < flips; i++)
                {
                    int at = rng.Next(2) == 0 ? rng.Next(Math.Min(b.Length, HeaderBytes)) : rng.Next(b.Length);
                    b[at] ^= (byte)(1 << rng.Next(8));
                }
                return b;
            }
            case "truncate":
                return b.AsSpan(0, rng.Next(2) == 0 ? rng.Next(Math.Min(b.Length, HeaderBytes)) : rng.Next(b.Length)).ToArray();
            case "delete-chunk":
            {
                int start = rng.Next(b.Length);
                int length = 1 + rng.Next(Math.Min(b.Length - start, 1 + rng.Next(2) * 4096));
                return [.. b.AsSpan(0, start), .. b.AsSpan(start + length)];
            }
            case "duplicate-chunk":
            {
                int start = rng.Next(b.Length);
                int length = 1 + rng.Next(Math.Min(b.Length - start, 1 + rng.Next(2) * 4096));
                int insert = rng.Next(b.Length + 1);
                return [.. b.AsSpan(0, insert), .. b.AsSpan(start, length), .. b.AsSpan(insert)];
            }
            default:
                throw new ArgumentException($"unknown mutation kind '{kind}'", nameof(kind));
        }
    }

    private byte[] BoundaryValue(Random rng)
    {
        var b = (byte[])_seed.Clone();
        int fields = Math.Max(1, Math.Min(b.Length, HeaderBytes) / 4);
        int at = 4 * rng.Next(fields);
        WriteValue(b, at, Boundaries[rng.Next(Boundaries.Length)], rng.Next(2) == 0 ? 4 : 8);
        return b;
    }

    private byte[] HugeCount(Random rng)
    {
        var b = (byte[])_seed.Clone();
        int at = _smallFields.Length > 0 ? _smallFields[rng.Next(_smallFields.Length)] : 4 * rng.Next(Math.Max(1, Math.Min(b.Length, HeaderBytes) / 4));
        WriteValue(b, at, HugeCounts[rng.Next(HugeCounts.Length)], rng.Next(3) == 0 ? 8 : 4);
        return b;
    }

    private static void WriteValue(byte[] b, int at, ulong value, int width)
    {
        if (at + width > b.Length) width = 4;
        if (at + width > b.Length) return;
        if (width == 4) BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), (uint)value);
        else BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(at), value);
    }

    private byte[] ReplaceNumber(Random rng, string replacement)
    {
        if (_numbers.Length == 0) return Binary(_seed, "bit-flip", rng);
        var (start, length) = _numbers[rng.Next(_numbers.Length)];
        return Splice(start, length, Encoding.ASCII.GetBytes(replacement));
    }

    private byte[] EditString(Random rng, byte[] insert)
    {
        if (_strings.Length == 0) return Binary(_seed, "bit-flip", rng);
        var (start, length) = _strings[rng.Next(_strings.Length)];
        // Inside the quotes, at a random place (keys and values alike).
        int at = start + 1 + rng.Next(Math.Max(1, length - 1));
        return Splice(at, 0, insert);
    }

    private byte[] ReplaceString(Random rng)
    {
        if (_strings.Length == 0) return Binary(_seed, "bit-flip", rng);
        var (start, length) = _strings[rng.Next(_strings.Length)];
        return Splice(start, length, "\"\""u8.ToArray());
    }

    private byte[] LineEdit(Random rng, bool duplicate)
    {
        int line = rng.Next(_lineStarts.Length);
        int start = _lineStarts[line];
        int end = line + 1 < _lineStarts.Length ? _lineStarts[line + 1] : _seed.Length;
        return duplicate ? Splice(start, 0, _seed.AsSpan(start, end - start).ToArray()) : Splice(start, end - start, []);
    }

    private byte[] Splice(int start, int length, byte[] insert) =>
        [.. _seed.AsSpan(0, start), .. insert, .. _seed.AsSpan(start + length)];

    private static byte[] Compress(byte[] plain)
    {
        using var buffer = new MemoryStream();
        using (var gz = new GZipStream(buffer, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(plain);
        return buffer.ToArray();
    }

    [GeneratedRegex(@"""(?:[^""\\\n]|\\.){0,200}""")]
    private static partial Regex StringToken();

    [GeneratedRegex(@"(?<![\w.""])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w""])")]
    private static partial Regex NumberToken();
}
