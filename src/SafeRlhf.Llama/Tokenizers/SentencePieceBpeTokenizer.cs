using System.Text;
using SafeRlhf.Llama.Formats;

namespace SafeRlhf.Llama.Tokenizers;

/// <summary>SentencePiece BPE encoding and decoding (the LLaMA tokenizer), exact to the SentencePiece library:
/// normalize (identity table: optional extra-whitespace removal, spaces → U+2581, dummy-prefix U+2581), split into
/// characters (user-defined pieces first, frozen), then repeatedly merge the adjacent pair whose concatenation is a
/// piece with the highest score, the leftmost pair on ties; a final symbol that is no piece falls back to its UTF-8
/// bytes as &lt;0xXX&gt; pieces (or to unk without byte fallback).</summary>
public sealed class SentencePieceBpeTokenizer : ITextTokenizer
{
    private const char SpaceSymbol = '\u2581';

    private readonly SentencePiece[] _pieces;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _mergeable;
    private readonly Dictionary<string, int> _reserved;
    private readonly string[] _userDefined;
    private readonly int[] _byteIds;

    public SentencePieceBpeTokenizer(SentencePieceModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Kind != SentencePieceModel.ModelKind.Bpe)
            throw new NotSupportedException($"SentencePiece model type {model.Kind} is not supported (BPE is)");
        if (model.PrecompiledCharsMapBytes > 0)
            throw new NotSupportedException($"SentencePiece normalizer '{model.NormalizerName}' with a precompiled table is not supported (identity is)");
        Model = model;
        _pieces = model.Pieces.ToArray();
        var mergeable = new Dictionary<string, int>(StringComparer.Ordinal);
        _reserved = new Dictionary<string, int>(StringComparer.Ordinal);
        _byteIds = new int[256];
        Array.Fill(_byteIds, -1);
        var userDefined = new List<string>();
        for (int id = 0; id < _pieces.Length; id++)
        {
            var p = _pieces[id];
            bool isMergeable = p.Type is SentencePieceType.Normal or SentencePieceType.UserDefined or SentencePieceType.Unused;
            if (!(isMergeable ? mergeable : _reserved).TryAdd(p.Piece, id))
                throw new InvalidDataException($"piece '{p.Piece}' occurs twice (ids {(isMergeable ? mergeable : _reserved)[p.Piece]} and {id})");
            if (p.Type == SentencePieceType.UserDefined && p.Piece.Length > 0) userDefined.Add(p.Piece);
            if (p.Type == SentencePieceType.Byte && TryParseBytePiece(p.Piece, out byte b)) _byteIds[b] = id;
        }
        _mergeable = mergeable.GetAlternateLookup<ReadOnlySpan<char>>();
        _userDefined = userDefined.OrderByDescending(s => s.Length).ToArray();
        if ((uint)model.UnkId >= (uint)_pieces.Length) throw new InvalidDataException($"unk id {model.UnkId} is outside the vocabulary of {_pieces.Length}");
        if ((uint)model.BosId >= (uint)_pieces.Length) throw new InvalidDataException($"bos id {model.BosId} is outside the vocabulary of {_pieces.Length}");
        if ((uint)model.EosId >= (uint)_pieces.Length) throw new InvalidDataException($"eos id {model.EosId} is outside the vocabulary of {_pieces.Length}");
        if (model.PadId < -1 || model.PadId >= _pieces.Length) throw new InvalidDataException($"pad id {model.PadId} is outside the vocabulary of {_pieces.Length}");
    }

    /// <summary>Reads a SentencePiece .model file (e.g. the LLaMA tokenizer.model); a file that cannot be used throws a
    /// <see cref="TokenizerFormatException"/> naming it.</summary>
    public static SentencePieceBpeTokenizer Load(string path)
    {
        var model = SentencePieceModel.Load(path);
        try
        {
            return new SentencePieceBpeTokenizer(model);
        }
        catch (Exception e) when (e is InvalidDataException or NotSupportedException)
        {
            throw new TokenizerFormatException(path, null, e.Message, e);
        }
    }

    public static SentencePieceBpeTokenizer Load(Stream stream) => new(SentencePieceModel.Load(stream));

    /// <summary>The tokenizer stored in a GGUF file's tokenizer.ggml.* metadata (model "llama").</summary>
    public static SentencePieceBpeTokenizer FromGguf(WeightFile gguf)
    {
        var m = gguf.Metadata;
        if (!m.TryGetValue("tokenizer.ggml.model", out var kind) || kind is not "llama")
            throw new WeightFormatException(gguf.Path, "tokenizer.ggml.model", $"tokenizer model '{kind}' is not a SentencePiece ('llama') vocabulary");
        if (!m.TryGetValue("tokenizer.ggml.tokens", out var tokensValue) || tokensValue is not string[] tokens)
            throw new WeightFormatException(gguf.Path, "tokenizer.ggml.tokens", "missing or not an array of strings");
        float[]? scores = m.TryGetValue("tokenizer.ggml.scores", out var s) ? s as float[] : null;
        int[]? types = m.TryGetValue("tokenizer.ggml.token_type", out var t) ? t as int[] : null;
        if (scores is not null && scores.Length != tokens.Length)
            throw new WeightFormatException(gguf.Path, "tokenizer.ggml.scores", $"{scores.Length} scores for {tokens.Length} tokens");
        if (types is not null && types.Length != tokens.Length)
            throw new WeightFormatException(gguf.Path, "tokenizer.ggml.token_type", $"{types.Length} types for {tokens.Length} tokens");
        // A special-token id must name a token; the optional padding id may also be -1 (as int32 or uint32): none.
        int Id(string key, int fallback, bool optional = false)
        {
            if (!m.TryGetValue(key, out var v)) return fallback;
            long l = GgufReader.ToInt64(v) ?? throw new WeightFormatException(gguf.Path, key, $"token id {v} is not an integer");
            if (optional && l is -1 or uint.MaxValue) return -1;
            if (l < 0 || l >= tokens.Length)
                throw new WeightFormatException(gguf.Path, key, $"token id {l} is outside the vocabulary of {tokens.Length} tokens");
            return (int)l;
        }
        var pieces = new SentencePiece[tokens.Length];
        for (int i = 0; i < tokens.Length; i++)
            pieces[i] = new SentencePiece(tokens[i], scores?[i] ?? 0f, (SentencePieceType)(types?[i] ?? (int)SentencePieceType.Normal));
        var model = new SentencePieceModel
        {
            Pieces = pieces,
            Kind = SentencePieceModel.ModelKind.Bpe,
            ByteFallback = pieces.Any(p => p.Type == SentencePieceType.Byte),
            UnkId = Id("tokenizer.ggml.unknown_token_id", 0),
            BosId = Id("tokenizer.ggml.bos_token_id", 1),
            EosId = Id("tokenizer.ggml.eos_token_id", 2),
            PadId = Id("tokenizer.ggml.padding_token_id", -1, optional: true),
            NormalizerName = "identity",
            AddDummyPrefix = !m.TryGetValue("tokenizer.ggml.add_space_prefix", out var prefix) || prefix is not false,
            RemoveExtraWhitespaces = false,
            EscapeWhitespaces = true,
        };
        try
        {
            return new SentencePieceBpeTokenizer(model);
        }
        catch (Exception e) when (e is InvalidDataException or NotSupportedException)
        {
            throw new WeightFormatException(gguf.Path, "tokenizer.ggml.tokens", e.Message, e);
        }
    }

    /// <summary>The parsed model.</summary>
    public SentencePieceModel Model { get; }

    public int VocabSize => _pieces.Length;
    public int BosId => Model.BosId;
    public int EosId => Model.EosId;
    public int UnkId => Model.UnkId;

    /// <summary>The piece of an id (spaces as U+2581).</summary>
    public string IdToPiece(int id) => _pieces[id].Piece;

    /// <summary>The id of a piece, or <see cref="UnkId"/> when it is none.</summary>
    public int PieceToId(string piece) =>
        _reserved.TryGetValue(piece, out int id) ? id : _mergeable.TryGetValue(piece, out id) ? id : UnkId;

    /// <summary>The text after SentencePiece normalization (what the pieces spell).</summary>
    public string Normalize(string text)
    {
        string s = text;
        if (Model.RemoveExtraWhitespaces)
        {
            var sb = new StringBuilder(s.Length);
            foreach (char c in s.Trim(' '))
                if (c != ' ' || sb.Length == 0 || sb[^1] != ' ') sb.Append(c);
            s = sb.ToString();
        }
        if (s.Length == 0) return s;
        char space = Model.EscapeWhitespaces ? SpaceSymbol : ' ';
        if (Model.EscapeWhitespaces) s = s.Replace(' ', SpaceSymbol);
        return Model.AddDummyPrefix ? space + s : s;
    }

    public IReadOnlyList<int> Encode(string text, bool addBos, bool addEos)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>();
        if (addBos) ids.Add(BosId);
        string normalized = Normalize(text);
        if (normalized.Length > 0) EncodeNormalized(normalized, ids);
        if (addEos) ids.Add(EosId);
        return ids;
    }

    private void EncodeNormalized(string s, List<int> output)
    {
        // Symbols: [start, start + length) of s, linked to their alive neighbours.
        var (start, length, frozen) = InitialSymbols(s);
        int count = start.Count;
        var prev = new int[count];
        var next = new int[count];
        for (int i = 0; i < count; i++)
        {
            prev[i] = i - 1;
            next[i] = i + 1 < count ? i + 1 : -1;
        }

        var agenda = new PriorityQueue<(int Left, int Right, int Size), (float Score, int Left)>(PairOrder.Instance);
        Dictionary<string, (string, string)>? unusedMerges = null;

        void MaybeAdd(int left, int right)
        {
            if (left < 0 || right < 0 || frozen[left] || frozen[right]) return;
            int size = length[left] + length[right];
            var merged = s.AsSpan(start[left], size);
            if (!_mergeable.TryGetValue(merged, out int id)) return;
            agenda.Enqueue((left, right, size), (_pieces[id].Score, left));
            if (_pieces[id].Type == SentencePieceType.Unused)
                (unusedMerges ??= new(StringComparer.Ordinal))[merged.ToString()] =
                    (s.Substring(start[left], length[left]), s.Substring(start[right], length[right]));
        }

        for (int i = 1; i < count; i++) MaybeAdd(i - 1, i);
        while (agenda.TryDequeue(out var top, out _))
        {
            var (l, r, size) = top;
            if (length[l] == 0 || length[r] == 0 || next[l] != r || length[l] + length[r] != size) continue;
            length[l] = size;
            next[l] = next[r];
            if (next[r] >= 0) prev[next[r]] = l;
            length[r] = 0;
            MaybeAdd(prev[l], l);
            MaybeAdd(l, next[l]);
        }

        var pieces = new List<string>();
        for (int i = 0; i != -1; i = next[i]) pieces.Add(s.Substring(start[i], length[i]));
        EmitPieces(pieces, unusedMerges, output);
    }

    /// <summary>One symbol per character (a surrogate pair is one), or per user-defined piece, which stays whole
    /// (frozen).</summary>
    private (List<int> Start, List<int> Length, List<bool> Frozen) InitialSymbols(string s)
    {
        var start = new List<int>();
        var length = new List<int>();
        var frozen = new List<bool>();
        for (int i = 0; i < s.Length;)
        {
            int n = 0;
            bool freeze = false;
            foreach (var u in _userDefined)
                if (s.AsSpan(i).StartsWith(u, StringComparison.Ordinal))
                {
                    n = u.Length;
                    freeze = true;
                    break;
                }
            if (n == 0) n = char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]) ? 2 : 1;
            start.Add(i);
            length.Add(n);
            frozen.Add(freeze);
            i += n;
        }
        return (start, length, frozen);
    }

    /// <summary>The ids of the merged pieces: a known piece as itself, an unused one as the two pieces it was merged
    /// from, else its UTF-8 bytes (byte fallback) or one unk per run of unknown pieces.</summary>
    private void EmitPieces(List<string> pieces, Dictionary<string, (string, string)>? unusedMerges, List<int> output)
    {
        bool previousUnknown = false;
        void Emit(string piece)
        {
            int id = PieceToId(piece);
            if (id != UnkId && _pieces[id].Type != SentencePieceType.Unused)
            {
                output.Add(id);
                previousUnknown = false;
                return;
            }
            if (unusedMerges is not null && unusedMerges.TryGetValue(piece, out var parts))
            {
                Emit(parts.Item1);
                Emit(parts.Item2);
                return;
            }
            if (Model.ByteFallback)
            {
                foreach (byte b in Encoding.UTF8.GetBytes(piece)) output.Add(_byteIds[b] >= 0 ? _byteIds[b] : UnkId);
                previousUnknown = false;
                return;
            }
            // Without byte fallback, runs of unknown symbols become one unk.
            if (!previousUnknown) output.Add(UnkId);
            previousUnknown = true;
        }

        foreach (var piece in pieces) Emit(piece);
    }

    /// <summary>The text of a sequence as SentencePiece decodes it: control pieces vanish, byte pieces are
    /// gathered into UTF-8, U+2581 becomes a space, and the dummy-prefix space is dropped once: from the first
    /// piece that starts with U+2581 before any text has been produced.</summary>
    public string Decode(IReadOnlyList<int> ids)
    {
        var bytes = new List<byte>();
        bool atStart = Model.AddDummyPrefix || Model.RemoveExtraWhitespaces;
        foreach (int id in ids)
        {
            var p = Piece(id);
            switch (p.Type)
            {
                case SentencePieceType.Control:
                    break;
                case SentencePieceType.Byte when TryParseBytePiece(p.Piece, out byte b):
                    bytes.Add(b);
                    atStart = false;
                    break;
                case SentencePieceType.Unknown:
                    bytes.AddRange(Encoding.UTF8.GetBytes(Model.UnkSurface));
                    atStart = false;
                    break;
                default:
                    string text = p.Piece;
                    if (atStart && text.Length > 0 && text[0] == SpaceSymbol)
                    {
                        text = text[1..];
                        atStart = false;
                    }
                    if (text.Length > 0) atStart = false;
                    bytes.AddRange(Encoding.UTF8.GetBytes(text.Replace(SpaceSymbol, ' ')));
                    break;
            }
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>As llama2.c run.c does with this vocabulary: the piece with spaces restored, without its leading
    /// space right after BOS; byte pieces give their byte; control pieces give nothing.</summary>
    public byte[] DecodePieceBytes(int prev, int id)
    {
        var p = Piece(id);
        switch (p.Type)
        {
            case SentencePieceType.Control: return [];
            case SentencePieceType.Byte when TryParseBytePiece(p.Piece, out byte b): return [b];
            case SentencePieceType.Unknown: return Encoding.UTF8.GetBytes(Model.UnkSurface);
        }
        string text = p.Piece.Replace(SpaceSymbol, ' ');
        if (prev == BosId && text.Length > 0 && text[0] == ' ') text = text[1..];
        return Encoding.UTF8.GetBytes(text);
    }

    public string DecodePiece(int prev, int id) => Encoding.UTF8.GetString(DecodePieceBytes(prev, id));

    private SentencePiece Piece(int id) =>
        (uint)id < (uint)_pieces.Length ? _pieces[id] : throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the vocabulary of {VocabSize}");

    private static bool TryParseBytePiece(string piece, out byte value)
    {
        value = 0;
        return piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>' &&
               byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out value);
    }

    /// <summary>Higher score first, then the leftmost pair.</summary>
    private sealed class PairOrder : IComparer<(float Score, int Left)>
    {
        public static readonly PairOrder Instance = new();

        public int Compare((float Score, int Left) a, (float Score, int Left) b)
        {
            int c = b.Score.CompareTo(a.Score);
            return c != 0 ? c : a.Left.CompareTo(b.Left);
        }
    }
}
