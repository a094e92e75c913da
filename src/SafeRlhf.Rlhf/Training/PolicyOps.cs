using SafeRlhf.Llama;
using SafeRlhf.Tensors;

namespace SafeRlhf.Rlhf.Training;

/// <summary>Token log-probabilities and scores of padded batches.</summary>
public static class PolicyOps
{
    /// <summary>log π(x[t+1] | x[..t]) for t = 0 .. L−2 → [B, L−1].</summary>
    public static Tensor LogProbs(LlamaModel model, SequenceBatch batch)
    {
        var device = model.Device;
        var dtype = model.TokEmbeddings.Weight.DType;
        var hidden = model.Forward(batch.TokensTensor(device), batch.PositionsTensor(device), batch.MaskTensor(device, dtype));
        var logits = model.Logits(hidden.Narrow(1, 0, batch.Length - 1));           // [B, L−1, V]
        var next = new int[batch.Batch * (batch.Length - 1)];
        for (int b = 0; b < batch.Batch; b++)
            for (int t = 0; t < batch.Length - 1; t++) next[b * (batch.Length - 1) + t] = batch.Tokens[b * batch.Length + t + 1];
        var targets = Tensor.FromArray(device, next, next.Length);
        var rows = logits.Reshape(next.Length, logits.Dim(-1));                     // [B·(L−1), V]
        return Ops.TokenLogProbs(rows, targets).Reshape(batch.Batch, batch.Length - 1);
    }

    /// <summary>Per-token scores [B, L] of a score model.</summary>
    public static Tensor Scores(ScoreModel model, SequenceBatch batch)
    {
        var device = model.Backbone.Device;
        var dtype = model.Backbone.TokEmbeddings.Weight.DType;
        return model.Forward(batch.TokensTensor(device), batch.PositionsTensor(device), batch.MaskTensor(device, dtype));
    }

    /// <summary>A [B, L] tensor of the model's dtype from row-major values.</summary>
    public static Tensor FromValues(Device device, DType dtype, double[] values, params int[] dims) => dtype == DType.F64
        ? Tensor.FromArray(device, values, dims)
        : Tensor.FromArray(device, Array.ConvertAll(values, v => (float)v), dims);
}
