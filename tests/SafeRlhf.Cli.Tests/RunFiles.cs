using System.Runtime.InteropServices;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Tensors;

namespace SafeRlhf.Cli.Tests;

/// <summary>Reading what a training run wrote: the weights file of its latest checkpoint and F32 tensors of it.</summary>
public static class RunFiles
{
    /// <summary>model.safetensors of the checkpoint that the run folder's <c>latest</c> names.</summary>
    public static string ModelOf(string run) =>
        Path.Combine(run, File.ReadAllText(Path.Combine(run, "latest")).Trim(), "model.safetensors");

    /// <summary>The values of an F32 tensor read from a file.</summary>
    public static float[] Floats(RawTensor raw)
    {
        Assert.Equal(DType.F32, raw.DType);
        return MemoryMarshal.Cast<byte, float>(raw.Data.Span).ToArray();
    }
}
