using System.Text;

namespace SafeRlhf.Llama.Tokenizers;

/// <summary>Kinds of SentencePiece pieces (sentencepiece_model.proto; also llama.cpp's token types).</summary>
public enum SentencePieceType
{
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// <summary>One vocabulary entry.</summary>
public readonly record struct SentencePiece(string Piece, float Score, SentencePieceType Type);

/// <summary>The parts of a SentencePiece ModelProto (.model file) that encoding and decoding need, read with a small
/// protobuf wire-format parser: pieces (field 1), trainer_spec (2: model_type 3, byte_fallback 35, unk/bos/eos/pad
/// ids 40–43, unk_surface 44) and normalizer_spec (3: name 1, precompiled_charsmap 2, add_dummy_prefix 3,
/// remove_extra_whitespaces 4, escape_whitespaces 5).</summary>
public sealed class SentencePieceModel
{
    /// <summary>trainer_spec.model_type values.</summary>
    public enum ModelKind
    {
        Unigram = 1,
        Bpe = 2,
        Word = 3,
        Char = 4,
    }

    public required IReadOnlyList<SentencePiece> Pieces { get; init; }
    public ModelKind Kind { get; init; } = ModelKind.Unigram;
    public bool ByteFallback { get; init; }
    public int UnkId { get; init; }
    public int BosId { get; init; } = 1;
    public int EosId { get; init; } = 2;
    public int PadId { get; init; } = -1;
    public string UnkSurface { get; init; } = " \u2047 ";
    public string NormalizerName { get; init; } = "nmt_nfkc";
    /// <summary>Size of the precompiled normalization table (0 for the identity normalizer).</summary>
    public int PrecompiledCharsMapBytes { get; init; }
    public bool AddDummyPrefix { get; init; } = true;
    public bool RemoveExtraWhitespaces { get; init; } = true;
    public bool EscapeWhitespaces { get; init; } = true;

    /// <summary>Reads a .model file; one that cannot be parsed throws a <see cref="TokenizerFormatException"/> naming it.</summary>
    public static SentencePieceModel Load(string path)
    {
        try
        {
            return Parse(File.ReadAllBytes(path));
        }
        catch (InvalidDataException e)
        {
            throw new TokenizerFormatException(path, null, e.Message, e);
        }
    }

    public static SentencePieceModel Load(Stream stream)
    {
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return Parse(buffer.ToArray());
    }

    /// <summary>Parses a serialized ModelProto.</summary>
    public static SentencePieceModel Parse(ReadOnlySpan<byte> proto)
    {
        var pieces = new List<SentencePiece>();
        ModelKind kind = ModelKind.Unigram;
        bool byteFallback = false;
        int unk = 0, bos = 1, eos = 2, pad = -1;
        string unkSurface = " \u2047 ", normalizer = "nmt_nfkc";
        int charsMap = 0;
        bool dummyPrefix = true, removeExtra = true, escape = true;

        var model = new ProtoReader(proto);
        while (model.Next(out int field, out int wire))
        {
            switch (field, wire)
            {
                case (1, 2):
                {
                    var p = new ProtoReader(model.Bytes());
                    string piece = "";
                    float score = 0;
                    var type = SentencePieceType.Normal;
                    while (p.Next(out int f, out int w))
                    {
                        switch (f, w)
                        {
                            case (1, 2): piece = Encoding.UTF8.GetString(p.Bytes()); break;
                            case (2, 5): score = p.Fixed32Single(); break;
                            case (3, 0): type = (SentencePieceType)(int)p.Varint(); break;
                            default: p.Skip(w); break;
                        }
                    }
                    pieces.Add(new SentencePiece(piece, score, type));
                    break;
                }
                case (2, 2):
                {
                    var t = new ProtoReader(model.Bytes());
                    while (t.Next(out int f, out int w))
                    {
                        switch (f, w)
                        {
                            case (3, 0): kind = (ModelKind)(int)t.Varint(); break;
                            case (35, 0): byteFallback = t.Varint() != 0; break;
                            case (40, 0): unk = (int)(long)t.Varint(); break;
                            case (41, 0): bos = (int)(long)t.Varint(); break;
                            case (42, 0): eos = (int)(long)t.Varint(); break;
                            case (43, 0): pad = (int)(long)t.Varint(); break;
                            case (44, 2): unkSurface = Encoding.UTF8.GetString(t.Bytes()); break;
                            default: t.Skip(w); break;
                        }
                    }
                    break;
                }
                case (3, 2):
                {
                    var n = new ProtoReader(model.Bytes());
                    while (n.Next(out int f, out int w))
                    {
                        switch (f, w)
                        {
                            case (1, 2): normalizer = Encoding.UTF8.GetString(n.Bytes()); break;
                            case (2, 2): charsMap = n.Bytes().Length; break;
                            case (3, 0): dummyPrefix = n.Varint() != 0; break;
                            case (4, 0): removeExtra = n.Varint() != 0; break;
                            case (5, 0): escape = n.Varint() != 0; break;
                            default: n.Skip(w); break;
                        }
                    }
                    break;
                }
                default:
                    model.Skip(wire);
                    break;
            }
        }
        if (pieces.Count == 0) throw new InvalidDataException("the SentencePiece model has no pieces");
        return new SentencePieceModel
        {
            Pieces = pieces, Kind = kind, ByteFallback = byteFallback, UnkId = unk, BosId = bos, EosId = eos, PadId = pad,
            UnkSurface = unkSurface, NormalizerName = normalizer, PrecompiledCharsMapBytes = charsMap,
            AddDummyPrefix = dummyPrefix, RemoveExtraWhitespaces = removeExtra, EscapeWhitespaces = escape,
        };
    }

    /// <summary>Protobuf wire format: varints, length-delimited fields, fixed 32/64-bit values.</summary>
    private ref struct ProtoReader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _pos;

        public bool Next(out int field, out int wire)
        {
            field = wire = 0;
            if (_pos >= _data.Length) return false;
            ulong key = Varint();
            field = (int)(key >> 3);
            wire = (int)(key & 7);
            if (field == 0) throw new InvalidDataException($"invalid protobuf field 0 at offset {_pos}");
            return true;
        }

        public ulong Varint()
        {
            ulong result = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_pos >= _data.Length) throw new InvalidDataException("truncated protobuf varint");
                byte b = _data[_pos++];
                result |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return result;
            }
            throw new InvalidDataException("protobuf varint longer than 10 bytes");
        }

        public ReadOnlySpan<byte> Bytes()
        {
            ulong n = Varint();
            if (n > (ulong)(_data.Length - _pos)) throw new InvalidDataException($"protobuf field of {n} bytes overruns the message at offset {_pos}");
            var span = _data.Slice(_pos, (int)n);
            _pos += (int)n;
            return span;
        }

        public float Fixed32Single()
        {
            if (_data.Length - _pos < 4) throw new InvalidDataException("truncated protobuf fixed32");
            float v = System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(_data[_pos..]);
            _pos += 4;
            return v;
        }

        public void Skip(int wire)
        {
            int n = wire switch
            {
                0 => 0,
                1 => 8,
                2 => -1,
                5 => 4,
                _ => throw new InvalidDataException($"unsupported protobuf wire type {wire}"),
            };
            if (wire == 0) Varint();
            else if (wire == 2) Bytes();
            else
            {
                if (_data.Length - _pos < n) throw new InvalidDataException("truncated protobuf fixed field");
                _pos += n;
            }
        }
    }
}
