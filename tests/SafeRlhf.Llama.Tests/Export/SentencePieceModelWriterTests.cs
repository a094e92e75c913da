using SafeRlhf.Llama.Export;
using SafeRlhf.Llama.Tests.Tokenizers;
using SafeRlhf.Llama.Tokenizers;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Llama.Tests.Export;

/// <summary>The SentencePiece model writer against the reader and the independent tokenizer cases.</summary>
public sealed class SentencePieceModelWriterTests
{
    [Fact]
    public void TheLlamaModelWrittenAndReadBackTokenizesEveryCaseAsBefore()
    {
        var original = SentencePieceModel.Load(Assets.Require("tokenizer/llama_tokenizer.model"));
        var copy = SentencePieceModel.Parse(SentencePieceModelWriter.Serialize(original));

        Assert.Equal(original.Pieces, copy.Pieces);
        Assert.Equal((original.Kind, original.ByteFallback, original.UnkId, original.BosId, original.EosId, original.PadId),
            (copy.Kind, copy.ByteFallback, copy.UnkId, copy.BosId, copy.EosId, copy.PadId));
        Assert.Equal((original.NormalizerName, original.AddDummyPrefix, original.RemoveExtraWhitespaces, original.EscapeWhitespaces, original.UnkSurface),
            (copy.NormalizerName, copy.AddDummyPrefix, copy.RemoveExtraWhitespaces, copy.EscapeWhitespaces, copy.UnkSurface));

        var tokenizer = new SentencePieceBpeTokenizer(copy);
        int checkedCases = 0;
        foreach (var (file, withBos, cases) in TokenizerCases.All())
            foreach (var c in cases)
            {
                Assert.True(c.Ids.SequenceEqual(tokenizer.Encode(c.Text, addBos: withBos, addEos: false)), $"{file}#{c.Index}");
                checkedCases++;
            }
        Assert.True(checkedCases > 0);
    }

    [Fact]
    public void ALlama2cVocabularyBecomesASentencePieceModelThatTokenizesAlike()
    {
        string path = Assets.Require("models/tok512.bin");
        var llama2c = Llama2cTokenizer.Load(path);
        var vocabulary = ExportVocabulary.Load(path);
        var converted = new SentencePieceBpeTokenizer(SentencePieceModel.Parse(SentencePieceModelWriter.Serialize(vocabulary.Model)));

        Assert.Equal(llama2c.VocabSize, converted.VocabSize);
        Assert.Equal(SentencePieceType.Control, vocabulary.Model.Pieces[llama2c.BosId].Type);
        foreach (var text in new[] { "Once upon a time, there was a little girl named Lily.", "Tom said: \"Hi!\"\n\nThe end.", "ümlaut 42 \u4e2d" })
            Assert.Equal(llama2c.Encode(text, addBos: true, addEos: false), converted.Encode(text, addBos: true, addEos: false));
    }
}
