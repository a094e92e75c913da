namespace SafeRlhf.Tensors;

/// <summary>A tensor op was called with incompatible shapes; the message names the op and the shapes.</summary>
public class TensorShapeException(string message) : ArgumentException(message);

/// <summary>A tensor op was called with an unsupported or mismatched dtype.</summary>
public class TensorDTypeException(string message) : ArgumentException(message);

/// <summary>A backend failed to run an op (for example a native kernel returned an error status).</summary>
public class BackendException(string message) : InvalidOperationException(message);

/// <summary>An index tensor holds a value outside the indexed axis; the message names the op, the value and the axis.</summary>
public class TensorIndexException(string message) : ArgumentException(message);

/// <summary>A backend was asked to run an op on a dtype or layout it has no kernel for; the message names the backend,
/// the op, the dtypes and the layout. Backends raise it instead of quietly routing the call elsewhere.</summary>
public class BackendNotSupportedException(string message) : NotSupportedException(message);
