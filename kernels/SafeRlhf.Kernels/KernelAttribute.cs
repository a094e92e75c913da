namespace SafeRlhf.Kernels;

/// <summary>Marks a static method as an explicitly grouped ILGPU kernel (launched with a KernelConfig).
/// <see cref="KernelCatalog"/> lists the marked methods for the PTX check; the GPU backend's kernel cache loads each
/// kernel by name, and a test checks that the two lists agree.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
public sealed class KernelAttribute : Attribute
{
}

/// <summary>Every kernel in this assembly, found by <see cref="KernelAttribute"/>.</summary>
public static class KernelCatalog
{
    /// <summary>Kernel methods ordered by declaring type and name.</summary>
    public static IReadOnlyList<System.Reflection.MethodInfo> All { get; } =
        typeof(KernelCatalog).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static))
            .Where(m => m.GetCustomAttributes(typeof(KernelAttribute), false).Length > 0)
            .OrderBy(m => m.DeclaringType!.Name, StringComparer.Ordinal)
            .ThenBy(m => m.Name, StringComparer.Ordinal)
            .ToArray();

    /// <summary>A stable file-friendly name: "RmsNormKernels.Forward".</summary>
    public static string NameOf(System.Reflection.MethodInfo kernel) => $"{kernel.DeclaringType!.Name}.{kernel.Name}";
}
