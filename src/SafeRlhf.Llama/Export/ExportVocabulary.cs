using System.Text;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Tokenizers;

namespace SafeRlhf.Llama.Export;

/// <summary>A model's vocabulary as a SentencePiece model, whatever file it came from: a SentencePiece .model (as
/// is), a GGUF file's tokenizer.ggml.* (model "llama"), or a llama2.c tokenizer.bin (converted the way llama2.c's
/// export wrote it, backwards: ' ' becomes U+2581, id 0 is &lt;unk&gt;, ids 1 and 2 the control tokens &lt;s&gt; and
/// &lt;/s&gt;, "&lt;0xXX&gt;" pieces byte tokens, a BPE model with byte fallback).</summary>
public sealed record ExportVocabulary(SentencePieceModel Model, string SourcePath, bool IsSentencePieceFile)
{
    /// <summary>The vocabulary of the tokenizer file <paramref name="path"/>.</summary>
    public static ExportVocabulary Load(string path)
    {
        if (path.EndsWith(".model", StringComparison.OrdinalIgnoreCase))
            return new ExportVocabulary(SentencePieceModel.Load(path), path, IsSentencePieceFile: true);
        if (path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
        {
            using var gguf = GgufReader.Read(path);
            return FromGguf(gguf);
        }
        return new ExportVocabulary(FromLlama2c(path, Llama2cTokenizer.Load(path)), path, IsSentencePieceFile: false);
    }

    /// <summary>The vocabulary in a GGUF file's metadata.</summary>
    public static ExportVocabulary FromGguf(WeightFile gguf) =>
        new(SentencePieceBpeTokenizer.FromGguf(gguf).Model, gguf.Path, IsSentencePieceFile: false);

    private static SentencePieceModel FromLlama2c(string path, Llama2cTokenizer tokenizer)
    {
        var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
        var pieces = new SentencePiece[tokenizer.VocabSize];
        for (int id = 0; id < pieces.Length; id++)
        {
            string text;
            try
            {
                text = strict.GetString(tokenizer.Piece(id));
            }
            catch (DecoderFallbackException e)
            {
                throw new TokenizerFormatException(path, null, $"token {id} is not valid UTF-8 text; it cannot be stored as a SentencePiece piece", e);
            }
            var (piece, type) = id switch
            {
                0 => ("<unk>", SentencePieceType.Unknown),
                1 => ("<s>", SentencePieceType.Control),
                2 => ("</s>", SentencePieceType.Control),
                _ when IsByteToken(text) => (text, SentencePieceType.Byte),
                _ => (text.Replace(' ', '\u2581'), SentencePieceType.Normal),
            };
            pieces[id] = new SentencePiece(piece, tokenizer.Score(id), type);
        }
        return new SentencePieceModel
        {
            Pieces = pieces, Kind = SentencePieceModel.ModelKind.Bpe, ByteFallback = true, UnkId = 0, BosId = tokenizer.BosId,
            EosId = tokenizer.EosId, PadId = -1, NormalizerName = "identity", AddDummyPrefix = true, RemoveExtraWhitespaces = false,
            EscapeWhitespaces = true,
        };
    }

    private static bool IsByteToken(string text) =>
        text.Length == 6 && text.StartsWith("<0x", StringComparison.Ordinal) && text[5] == '>' && Uri.IsHexDigit(text[3]) && Uri.IsHexDigit(text[4]);

    /// <summary>GGUF tokenizer metadata as llama.cpp reads it.</summary>
    public IEnumerable<KeyValuePair<string, object>> GgufMetadata()
    {
        var m = Model;
        yield return new("tokenizer.ggml.model", "llama");
        yield return new("tokenizer.ggml.tokens", m.Pieces.Select(p => p.Piece).ToArray());
        yield return new("tokenizer.ggml.scores", m.Pieces.Select(p => p.Score).ToArray());
        yield return new("tokenizer.ggml.token_type", m.Pieces.Select(p => (int)p.Type).ToArray());
        yield return new("tokenizer.ggml.bos_token_id", (uint)m.BosId);
        yield return new("tokenizer.ggml.eos_token_id", (uint)m.EosId);
        yield return new("tokenizer.ggml.unknown_token_id", (uint)m.UnkId);
        if (m.PadId >= 0) yield return new("tokenizer.ggml.padding_token_id", (uint)m.PadId);
        yield return new("tokenizer.ggml.add_bos_token", true);
        yield return new("tokenizer.ggml.add_eos_token", false);
        yield return new("tokenizer.ggml.add_space_prefix", m.AddDummyPrefix);
    }
}
