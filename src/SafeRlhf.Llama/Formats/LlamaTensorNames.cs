namespace SafeRlhf.Llama.Formats;

/// <summary>The Meta (llama reference code) tensor names and shapes that every reader produces.</summary>
public static class LlamaTensorNames
{
    public const string TokEmbeddings = "tok_embeddings.weight";
    public const string Norm = "norm.weight";
    public const string Output = "output.weight";

    public static string AttentionNorm(int layer) => $"layers.{layer}.attention_norm.weight";
    public static string Wq(int layer) => $"layers.{layer}.attention.wq.weight";
    public static string Wk(int layer) => $"layers.{layer}.attention.wk.weight";
    public static string Wv(int layer) => $"layers.{layer}.attention.wv.weight";
    public static string Wo(int layer) => $"layers.{layer}.attention.wo.weight";
    public static string FfnNorm(int layer) => $"layers.{layer}.ffn_norm.weight";
    public static string W1(int layer) => $"layers.{layer}.feed_forward.w1.weight";
    public static string W2(int layer) => $"layers.{layer}.feed_forward.w2.weight";
    public static string W3(int layer) => $"layers.{layer}.feed_forward.w3.weight";

    /// <summary>Every parameter of a model with this config and its row-major dims ([out, in] for matrices);
    /// output.weight only when the classifier is not shared.</summary>
    public static IReadOnlyList<(string Name, int[] Dims)> Expected(LlamaConfig c)
    {
        var list = new List<(string, int[])> { (TokEmbeddings, [c.VocabSize, c.Dim]) };
        for (int l = 0; l < c.NLayers; l++)
        {
            list.Add((AttentionNorm(l), [c.Dim]));
            list.Add((Wq(l), [c.Dim, c.Dim]));
            list.Add((Wk(l), [c.KvDim, c.Dim]));
            list.Add((Wv(l), [c.KvDim, c.Dim]));
            list.Add((Wo(l), [c.Dim, c.Dim]));
            list.Add((FfnNorm(l), [c.Dim]));
            list.Add((W1(l), [c.HiddenDim, c.Dim]));
            list.Add((W2(l), [c.Dim, c.HiddenDim]));
            list.Add((W3(l), [c.HiddenDim, c.Dim]));
        }
        list.Add((Norm, [c.Dim]));
        if (!c.TiedEmbeddings) list.Add((Output, [c.VocabSize, c.Dim]));
        return list;
    }
}
