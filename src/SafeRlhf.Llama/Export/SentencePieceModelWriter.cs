using System.Buffers.Binary;
using System.Text;
using SafeRlhf.Llama.Tokenizers;

namespace SafeRlhf.Llama.Export;

/// <summary>Serializes a <see cref="SentencePieceModel"/> as a SentencePiece ModelProto (.model file), the fields
/// <see cref="SentencePieceModel.Parse"/> reads: pieces (1: piece 1, score 2, type 3), trainer_spec (2: model_type 3,
/// byte_fallback 35, unk/bos/eos/pad ids 40–43, unk_surface 44) and normalizer_spec (3: name 1, add_dummy_prefix 3,
/// remove_extra_whitespaces 4, escape_whitespaces 5). A model with a precompiled normalization table cannot be
/// written (the table is not kept): copy its original file instead.</summary>
public static class SentencePieceModelWriter
{
    public static byte[] Serialize(SentencePieceModel model)
    {
        if (model.PrecompiledCharsMapBytes > 0)
            throw new NotSupportedException($"the '{model.NormalizerName}' normalizer's table is not kept; copy the original .model file");
        var proto = new MemoryStream();
        foreach (var p in model.Pieces)
        {
            var piece = new MemoryStream();
            Bytes(piece, 1, Encoding.UTF8.GetBytes(p.Piece));
            Fixed32(piece, 2, p.Score);
            Varint(piece, 3, (ulong)p.Type);
            Bytes(proto, 1, piece.ToArray());
        }
        var trainer = new MemoryStream();
        Varint(trainer, 3, (ulong)model.Kind);
        Varint(trainer, 35, model.ByteFallback ? 1UL : 0UL);
        Varint(trainer, 40, (ulong)(long)model.UnkId);
        Varint(trainer, 41, (ulong)(long)model.BosId);
        Varint(trainer, 42, (ulong)(long)model.EosId);
        Varint(trainer, 43, (ulong)(long)model.PadId);
        Bytes(trainer, 44, Encoding.UTF8.GetBytes(model.UnkSurface));
        Bytes(proto, 2, trainer.ToArray());
        var normalizer = new MemoryStream();
        Bytes(normalizer, 1, Encoding.UTF8.GetBytes(model.NormalizerName));
        Varint(normalizer, 3, model.AddDummyPrefix ? 1UL : 0UL);
        Varint(normalizer, 4, model.RemoveExtraWhitespaces ? 1UL : 0UL);
        Varint(normalizer, 5, model.EscapeWhitespaces ? 1UL : 0UL);
        Bytes(proto, 3, normalizer.ToArray());
        return proto.ToArray();
    }

    private static void Tag(Stream s, int field, int wire) => RawVarint(s, (ulong)((field << 3) | wire));

    private static void Varint(Stream s, int field, ulong value)
    {
        Tag(s, field, 0);
        RawVarint(s, value);
    }

    private static void Fixed32(Stream s, int field, float value)
    {
        Tag(s, field, 5);
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(b, value);
        s.Write(b);
    }

    private static void Bytes(Stream s, int field, byte[] value)
    {
        Tag(s, field, 2);
        RawVarint(s, (ulong)value.Length);
        s.Write(value);
    }

    private static void RawVarint(Stream s, ulong value)
    {
        while (value >= 0x80)
        {
            s.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        s.WriteByte((byte)value);
    }
}
