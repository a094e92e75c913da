using System.Buffers.Binary;
using System.Text;

namespace SafeRlhf.Llama.Tokenizers;

/// <summary>The llama2.c tokenizer.bin format and the encoding of llama2.c run.c: the file holds max_token_length
/// (int32), then per token a float score, an int32 byte length and the bytes (spaces as ' ', bytes as "&lt;0xXX&gt;").
/// Encoding puts the " " token first (dummy prefix), looks every UTF-8 character up (falling back to byte tokens
/// id = byte + 3), then repeatedly merges the adjacent pair whose concatenation is the best-scoring token
/// (first such pair on ties).</summary>
public sealed class Llama2cTokenizer : ITextTokenizer
{
    private readonly byte[][] _pieces;
    private readonly float[] _scores;
    private readonly Dictionary<string, int> _lookup;
    private readonly int _longestPiece;

    /// <summary>Smallest vocabulary the encoder can use: &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt; and the 256 byte-fallback tokens
    /// (id = byte + 3).</summary>
    public const int MinVocabSize = 259;

    /// <summary>Builds a tokenizer from pieces (raw bytes) and scores.</summary>
    public Llama2cTokenizer(IReadOnlyList<byte[]> pieces, IReadOnlyList<float> scores, int maxTokenLength)
    {
        if (pieces.Count != scores.Count) throw new ArgumentException($"{pieces.Count} pieces but {scores.Count} scores");
        if (pieces.Count < MinVocabSize)
            throw new ArgumentException($"a llama2.c vocabulary has at least {MinVocabSize} tokens (<unk>, <s>, </s> and the 256 byte tokens), got {pieces.Count}");
        _pieces = pieces.ToArray();
        _scores = scores.ToArray();
        _longestPiece = _pieces.Max(p => p.Length);
        MaxTokenLength = Math.Max(maxTokenLength, _longestPiece);
        _lookup = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < _pieces.Length; i++) _lookup.TryAdd(Key(_pieces[i]), i);
    }

    /// <summary>Reads a llama2.c tokenizer file; <paramref name="vocabSize"/> (from the model header) is checked
    /// when given, else every entry up to the end of the file is read. A file that cannot be used throws a
    /// <see cref="TokenizerFormatException"/> naming it.</summary>
    public static Llama2cTokenizer Load(string path, int? vocabSize = null)
    {
        var bytes = File.ReadAllBytes(path);
        TokenizerFormatException Bad(string message) => new(path, null, message);
        if (bytes.Length < 4) throw Bad("too short for a llama2.c tokenizer");
        int maxLen = BinaryPrimitives.ReadInt32LittleEndian(bytes);
        if (maxLen <= 0 || maxLen > bytes.Length) throw Bad($"invalid max_token_length {maxLen} (the file has {bytes.Length} bytes)");
        if (vocabSize is < MinVocabSize || vocabSize > bytes.Length / 8)
            throw Bad($"vocabulary of {vocabSize} tokens: needs at least {MinVocabSize}, and a file of {bytes.Length} bytes holds at most {bytes.Length / 8}");
        var pieces = new List<byte[]>();
        var scores = new List<float>();
        int pos = 4;
        while (vocabSize is null ? pos < bytes.Length : pieces.Count < vocabSize)
        {
            int id = pieces.Count;
            if (bytes.Length - pos < 8) throw Bad($"truncated at token {id} (offset {pos})");
            float score = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(pos));
            int len = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(pos + 4));
            pos += 8;
            if (len < 0 || len > maxLen || len > bytes.Length - pos) throw Bad($"token {id} has invalid length {len} at offset {pos - 4}");
            pieces.Add(bytes.AsSpan(pos, len).ToArray());
            scores.Add(score);
            pos += len;
        }
        if (pos != bytes.Length) throw Bad($"{bytes.Length - pos} bytes follow the {pieces.Count} tokens");
        if (pieces.Count < MinVocabSize)
            throw Bad($"{pieces.Count} tokens; a llama2.c vocabulary has at least {MinVocabSize} (<unk>, <s>, </s> and the 256 byte tokens)");
        return new Llama2cTokenizer(pieces, scores, maxLen);
    }

    /// <summary>The vocabulary that llama2.c's tokenizer export writes for a SentencePiece model: U+2581 becomes ' ',
    /// BOS and EOS become "\n&lt;s&gt;\n" and "\n&lt;/s&gt;\n", scores are kept.</summary>
    public static Llama2cTokenizer FromSentencePiece(SentencePieceModel model)
    {
        var pieces = new List<byte[]>(model.Pieces.Count);
        for (int i = 0; i < model.Pieces.Count; i++)
        {
            string t = i == model.BosId ? "\n<s>\n" : i == model.EosId ? "\n</s>\n" : model.Pieces[i].Piece;
            pieces.Add(Encoding.UTF8.GetBytes(t.Replace('\u2581', ' ')));
        }
        return new Llama2cTokenizer(pieces, model.Pieces.Select(p => p.Score).ToArray(), pieces.Max(p => p.Length));
    }

    public int VocabSize => _pieces.Length;

    /// <summary>1, as hard-coded in run.c.</summary>
    public int BosId => 1;

    /// <summary>2, as hard-coded in run.c.</summary>
    public int EosId => 2;

    /// <summary>Longest piece in bytes, as stored in the file.</summary>
    public int MaxTokenLength { get; }

    /// <summary>Raw bytes of a piece.</summary>
    public ReadOnlySpan<byte> Piece(int id) => _pieces[id];

    /// <summary>Merge score of a piece.</summary>
    public float Score(int id) => _scores[id];

    // Bytes as chars one-to-one, so that lookups compare raw bytes like run.c's strcmp.
    private static string Key(ReadOnlySpan<byte> bytes) => Encoding.Latin1.GetString(bytes);

    private int Lookup(ReadOnlySpan<byte> bytes) => _lookup.TryGetValue(Key(bytes), out int id) ? id : -1;

    public IReadOnlyList<int> Encode(string text, bool addBos, bool addEos)
    {
        ArgumentNullException.ThrowIfNull(text);
        byte[] utf8 = Encoding.UTF8.GetBytes(text);
        var tokens = new List<int>(utf8.Length + 3);
        if (addBos) tokens.Add(BosId);
        if (utf8.Length > 0)
        {
            int prefix = Lookup(" "u8);
            if (prefix >= 0) tokens.Add(prefix);
        }

        // One UTF-8 character at a time (at most 4 bytes), byte fallback when it is not a piece.
        int start = 0;
        for (int i = 0; i < utf8.Length; i++)
        {
            if ((utf8[i] & 0xC0) != 0x80) start = i;
            int length = i - start + 1;
            bool continues = i + 1 < utf8.Length && (utf8[i + 1] & 0xC0) == 0x80;
            if (continues && length < 4) continue;
            var character = utf8.AsSpan(start, length);
            int id = Lookup(character);
            if (id >= 0) tokens.Add(id);
            else foreach (byte b in character) tokens.Add(b + 3);
            start = i + 1;
        }

        var pair = new byte[2 * _longestPiece + 2];
        while (true)
        {
            float bestScore = -1e10f;
            int bestId = -1, bestIndex = -1;
            for (int i = 0; i < tokens.Count - 1; i++)
            {
                var a = _pieces[tokens[i]];
                var b = _pieces[tokens[i + 1]];
                a.CopyTo(pair, 0);
                b.CopyTo(pair, a.Length);
                int id = Lookup(pair.AsSpan(0, a.Length + b.Length));
                if (id >= 0 && _scores[id] > bestScore)
                {
                    bestScore = _scores[id];
                    bestId = id;
                    bestIndex = i;
                }
            }
            if (bestIndex < 0) break;
            tokens[bestIndex] = bestId;
            tokens.RemoveAt(bestIndex + 1);
        }

        if (addEos) tokens.Add(EosId);
        return tokens;
    }

    /// <summary>run.c's decode: the piece, without its leading space right after BOS; "&lt;0xXX&gt;" pieces give that byte.</summary>
    public byte[] DecodePieceBytes(int prev, int id)
    {
        if ((uint)id >= (uint)_pieces.Length) throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the vocabulary of {VocabSize}");
        ReadOnlySpan<byte> piece = _pieces[id];
        if (prev == BosId && piece.Length > 0 && piece[0] == (byte)' ') piece = piece[1..];
        if (TryParseByte(piece, out byte value)) return [value];
        return piece.ToArray();
    }

    public string DecodePiece(int prev, int id) => Encoding.UTF8.GetString(DecodePieceBytes(prev, id));

    /// <summary>The text of a sequence as run.c prints it: BOS and EOS print nothing; each other token prints its
    /// piece given the token before it (so the dummy-prefix space after BOS disappears).</summary>
    public string Decode(IReadOnlyList<int> ids)
    {
        var bytes = new List<byte>();
        for (int i = 0; i < ids.Count; i++)
        {
            if (ids[i] == BosId || ids[i] == EosId) continue;
            bytes.AddRange(DecodePieceBytes(i > 0 ? ids[i - 1] : -1, ids[i]));
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    private static bool TryParseByte(ReadOnlySpan<byte> piece, out byte value)
    {
        value = 0;
        if (piece.Length != 6 || !piece.StartsWith("<0x"u8) || piece[5] != (byte)'>') return false;
        int hi = HexDigit(piece[3]), lo = HexDigit(piece[4]);
        if (hi < 0 || lo < 0) return false;
        value = (byte)(hi * 16 + lo);
        return true;
    }

    private static int HexDigit(byte c) => c switch
    {
        >= (byte)'0' and <= (byte)'9' => c - '0',
        >= (byte)'A' and <= (byte)'F' => c - 'A' + 10,
        >= (byte)'a' and <= (byte)'f' => c - 'a' + 10,
        _ => -1,
    };
}
