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
        var trainer = new TrainerSpec();
        var normalizer = new NormalizerSpec();
        var model = new ProtoReader(proto);
        while (model.Next(out int field, out int wire))
        {
            switch (field, wire)
            {
                case (1, 2): pieces.Add(ParsePiece(model.Bytes())); break;
                case (2, 2): trainer = ParseTrainerSpec(model.Bytes(), trainer); break;
                case (3, 2): normalizer = ParseNormalizerSpec(model.Bytes(), normalizer); break;
                default: model.Skip(wire); break;
            }
        }
        if (pieces.Count == 0) throw new InvalidDataException("the SentencePiece model has no pieces");
        return new SentencePieceModel
        {
            Pieces = pieces, Kind = trainer.Kind, ByteFallback = trainer.ByteFallback, UnkId = trainer.Unk, BosId = trainer.Bos,
            EosId = trainer.Eos, PadId = trainer.Pad, UnkSurface = trainer.UnkSurface, NormalizerName = normalizer.Name,
            PrecompiledCharsMapBytes = normalizer.CharsMap, AddDummyPrefix = normalizer.DummyPrefix,
            RemoveExtraWhitespaces = normalizer.RemoveExtra, EscapeWhitespaces = normalizer.Escape,
        };
    }

    /// <summary>ModelProto.SentencePiece: piece (1), score (2), type (3).</summary>
    private static SentencePiece ParsePiece(ReadOnlySpan<byte> bytes)
    {
        var p = new ProtoReader(bytes);
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
        return new SentencePiece(piece, score, type);
    }

    /// <summary>The TrainerSpec fields the tokenizer uses, with SentencePiece's defaults.</summary>
    private sealed record TrainerSpec(ModelKind Kind = ModelKind.Unigram, bool ByteFallback = false, int Unk = 0, int Bos = 1,
        int Eos = 2, int Pad = -1, string UnkSurface = " \u2047 ");

    /// <summary>A TrainerSpec message merged into <paramref name="spec"/> (a repeated message merges, as in protobuf).</summary>
    private static TrainerSpec ParseTrainerSpec(ReadOnlySpan<byte> bytes, TrainerSpec spec)
    {
        var t = new ProtoReader(bytes);
        while (t.Next(out int f, out int w))
        {
            switch (f, w)
            {
                case (3, 0): spec = spec with { Kind = (ModelKind)(int)t.Varint() }; break;
                case (35, 0): spec = spec with { ByteFallback = t.Varint() != 0 }; break;
                case (40, 0): spec = spec with { Unk = (int)(long)t.Varint() }; break;
                case (41, 0): spec = spec with { Bos = (int)(long)t.Varint() }; break;
                case (42, 0): spec = spec with { Eos = (int)(long)t.Varint() }; break;
                case (43, 0): spec = spec with { Pad = (int)(long)t.Varint() }; break;
                case (44, 2): spec = spec with { UnkSurface = Encoding.UTF8.GetString(t.Bytes()) }; break;
                default: t.Skip(w); break;
            }
        }
        return spec;
    }

    /// <summary>The NormalizerSpec fields the tokenizer uses (the precompiled map by its size only), with the defaults.</summary>
    private sealed record NormalizerSpec(string Name = "nmt_nfkc", int CharsMap = 0, bool DummyPrefix = true, bool RemoveExtra = true,
        bool Escape = true);

    /// <summary>A NormalizerSpec message merged into <paramref name="spec"/>.</summary>
    private static NormalizerSpec ParseNormalizerSpec(ReadOnlySpan<byte> bytes, NormalizerSpec spec)
    {
        var n = new ProtoReader(bytes);
        while (n.Next(out int f, out int w))
        {
            switch (f, w)
            {
                case (1, 2): spec = spec with { Name = Encoding.UTF8.GetString(n.Bytes()) }; break;
                case (2, 2): spec = spec with { CharsMap = n.Bytes().Length }; break;
                case (3, 0): spec = spec with { DummyPrefix = n.Varint() != 0 }; break;
                case (4, 0): spec = spec with { RemoveExtra = n.Varint() != 0 }; break;
                case (5, 0): spec = spec with { Escape = n.Varint() != 0 }; break;
                default: n.Skip(w); break;
            }
        }
        return spec;
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
