using SafeRlhf.Rlhf.Data;

namespace SafeRlhf.Rlhf.Tests;

public sealed class ChatTemplateTests
{
    [Fact]
    public void TheDefaultIsTheSafeRlhfTemplateAndPromptTemplateUsesIt()
    {
        Assert.Equal(PromptTemplate.Prefix + ChatTemplate.Placeholder + PromptTemplate.AssistantMarker, ChatTemplate.DefaultText);
        Assert.Same(ChatTemplate.Default, ChatTemplate.Parse(ChatTemplate.DefaultText));
        Assert.Equal(PromptTemplate.Format("x y"), ChatTemplate.Default.Format("x y"));
    }

    [Fact]
    public void ACustomTemplateReplacesItsPlaceholderOnly()
    {
        var t = ChatTemplate.Parse("<s>[INST] {prompt} [/INST]");
        Assert.Equal("<s>[INST] a {b} [/INST]", t.Format("a {b}"));
        Assert.Equal("<s>[INST] q [/INST] r", t.FormatWithResponse("q", " r"));
        Assert.Equal("{prompt}", ChatTemplate.Parse("{prompt}").Text);
    }

    [Theory]
    [InlineData("USER: ASSISTANT:", "exactly once")]
    [InlineData("{prompt}{prompt}", "2 times")]
    [InlineData("{system} {prompt}", "{system}")]
    [InlineData("{Prompt}", "exactly once")]
    public void BadTemplatesSayWhatIsWrong(string text, string mention)
    {
        var e = Assert.Throws<ArgumentException>(() => ChatTemplate.Parse(text));
        Assert.Contains(mention, e.Message);
    }
}
