using System.CommandLine;
using System.Runtime.InteropServices;
using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Tensors;

namespace SafeRlhf.Cli.Commands;

/// <summary>`saferlhf info`: devices, CPU, memory and library versions.</summary>
public static class InfoCommand
{
    public static Command Create()
    {
        var modelOption = new Option<string?>("--model")
        {
            Description = "Instead: what a model path resolves to (weight file, Hugging Face, checkpoint or run folder), its tokenizer, chat template and shape",
        };
        var command = new Command("info", "Show devices, CPU features, memory, and native library / ILGPU versions") { modelOption };
        command.SetAction(parse => CliRunner.Run(parse, () =>
        {
            if (parse.GetValue(modelOption) is { } model)
            {
                ModelInfo.Print(model);
                return 0;
            }
            Console.WriteLine($"saferlhf        {typeof(InfoCommand).Assembly.GetName().Version}");
            Console.WriteLine($".NET            {RuntimeInformation.FrameworkDescription} on {RuntimeInformation.OSDescription} ({RuntimeInformation.OSArchitecture})");
            Console.WriteLine($"cores           {Environment.ProcessorCount}");
            Console.WriteLine($"memory          {GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1 << 20)} MiB available to the runtime");
            Console.WriteLine($"native library  {NativeLibraryVersion()}");
            foreach (var device in DeviceFactory.Describe()) Console.WriteLine($"device          {device}");
            return 0;
        }));
        return command;
    }

    private static string NativeLibraryVersion()
    {
        try
        {
            return $"libsaferlhf_native {CpuFeatures.NativeVersion()}";
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException or BackendException)
        {
            return $"unavailable: {ex.Message}";
        }
    }
}
