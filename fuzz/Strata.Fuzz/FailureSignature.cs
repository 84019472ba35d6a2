using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Strata.Fuzz;

/// <summary>
/// Names a failure by what went wrong and where, so a hundred crashing inputs of one bug count as
/// one: the exception's type (and the inner one's), and the innermost frame in Strata's own code.
/// </summary>
internal static class FailureSignature
{
    /// <summary>
    /// Type.Method, as written in the source: an async method's state machine
    /// (Type+&lt;Method&gt;d__7.MoveNext) and a lambda (Type+&lt;&gt;c__DisplayClass3_0.&lt;Method&gt;b__0)
    /// are named as the method they are in.
    /// </summary>
    private static string Name(System.Reflection.MethodBase method)
    {
        var type = method.DeclaringType!;
        string name = method.Name.StartsWith('<') ? Between(method.Name) : method.Name;
        if (type.Name.StartsWith('<') && type.DeclaringType is { } outer)
        {
            if (method.Name == "MoveNext")
            {
                name = Between(type.Name);
            }

            type = outer;
        }

        return $"{type.FullName}.{name}";
    }

    private static string Between(string generated) => generated[1..generated.IndexOf('>', StringComparison.Ordinal)];

    public static string Of(Exception failure)
    {
        ArgumentNullException.ThrowIfNull(failure);
        var chain = new List<Exception>();
        for (var e = failure; e is not null; e = e.InnerException)
        {
            chain.Add(e);
        }

        string types = string.Join(" <- ", chain.Select(e => e.GetType().Name));
        if (failure is FuzzHang { Unwound: false } loop)
        {
            // Its thread still runs and cannot be asked where it is: the target's step names it.
            return $"{types} in step '{loop.Step}': a loop without I/O";
        }

        if (failure is FuzzFailure)
        {
            // The checker's findings differ by what was broken, not where: keep the message's first
            // words, numbers (offsets, cookies, counts) left out.
            return $"{types}: {string.Join(' ', Regex.Replace(failure.Message, "[0-9]+", "N").Split(' ').Take(8))}";
        }

        // The innermost frame of Strata's own code, searched from the innermost exception outwards.
        string? where = Enumerable.Reverse(chain).Select(ProductFrame).FirstOrDefault(f => f is not null);
        return $"{types} at {where ?? "a place outside Strata's code"}";
    }

    private static string? ProductFrame(Exception e)
    {
        var method = new StackTrace(e, fNeedFileInfo: false).GetFrames()
            .Select(f => f.GetMethod())
            .FirstOrDefault(m => m?.DeclaringType?.FullName is { } type
                && type.StartsWith("Strata.", StringComparison.Ordinal) && !type.StartsWith("Strata.Fuzz.", StringComparison.Ordinal));
        return method is null ? null : Name(method);
    }
}
