using System.Text;

namespace Kangaroo.Chat;

/// <summary>
/// The variables a render sees. A for loop body runs in a child scope (as in jinja2, a <c>{% set %}</c> inside a loop
/// is gone after it, which is why templates carry state out of loops in a <c>namespace()</c>); if blocks do not scope.
/// </summary>
internal sealed class RenderScope(RenderScope? parent)
{
    private readonly Dictionary<string, object?> _variables = new(StringComparer.Ordinal);

    private RenderScope? Parent { get; } = parent;

    public bool TryGet(string name, out object? value)
    {
        for (RenderScope? scope = this; scope is not null; scope = scope.Parent)
            if (scope._variables.TryGetValue(name, out value))
                return true;
        value = null;
        return false;
    }

    public void Set(string name, object? value) => _variables[name] = value;
}

/// <summary>Break/continue inside a for loop (the loopcontrols extension transformers enables).</summary>
internal enum LoopSignal { None, Break, Continue }

internal sealed class RenderContext(RenderScope globals)
{
    /// <summary>No chat prompt comes near this; it stops a template like <c>{{ 'x' * 10**9 }}</c> from taking all memory.</summary>
    public const int MaxOutputChars = 64 << 20;

    /// <summary>
    /// Loop iterations one render may run: real templates run one per message (and per tool), while nested
    /// <c>range(1000000)</c> loops would spin for hours without writing anything.
    /// </summary>
    public const long MaxLoopIterations = 1_000_000;

    private long _iterations;

    public void CountIteration(TemplateNode at)
    {
        if (++_iterations > MaxLoopIterations)
            throw at.Error($"the template ran more than {MaxLoopIterations} loop iterations");
    }

    public RenderScope Scope { get; set; } = new(globals);
    public StringBuilder Output { get; } = new();
    public LoopSignal Signal { get; set; }

    public void Write(string text, TemplateNode at)
    {
        if (Output.Length + text.Length > MaxOutputChars)
            throw at.Error($"the rendered prompt is larger than {MaxOutputChars} characters");
        Output.Append(text);
    }
}

internal abstract class TemplateNode(int line, int column)
{
    public int Line { get; } = line;
    public int Column { get; } = column;

    public ChatTemplateException Error(string message) =>
        new($"chat template error at line {Line}, column {Column}: {message}", Line, Column);
}

// ---- Statements -------------------------------------------------------------------------------------------------

internal abstract class StatementNode(int line, int column) : TemplateNode(line, column)
{
    public abstract void Render(RenderContext context);

    public static void RenderAll(IReadOnlyList<StatementNode> body, RenderContext context)
    {
        foreach (StatementNode node in body)
        {
            node.Render(context);
            if (context.Signal != LoopSignal.None) return;
        }
    }
}

internal sealed class TextNode(string text, int line, int column) : StatementNode(line, column)
{
    public string Text { get; } = text;
    public override void Render(RenderContext context) => context.Write(Text, this);
}

internal sealed class OutputNode(ExpressionNode expression) : StatementNode(expression.Line, expression.Column)
{
    public override void Render(RenderContext context) => context.Write(TemplateValues.ToStr(expression.Evaluate(context)), this);
}

internal sealed class IfNode(IReadOnlyList<(ExpressionNode Condition, IReadOnlyList<StatementNode> Body)> branches,
    IReadOnlyList<StatementNode>? otherwise, int line, int column) : StatementNode(line, column)
{
    public override void Render(RenderContext context)
    {
        foreach (var (condition, body) in branches)
        {
            if (TemplateValues.IsTrue(condition.Evaluate(context)))
            {
                RenderAll(body, context);
                return;
            }
        }
        if (otherwise is not null) RenderAll(otherwise, context);
    }
}

internal sealed class ForNode(IReadOnlyList<string> targets, ExpressionNode iterable, ExpressionNode? filter,
    IReadOnlyList<StatementNode> body, IReadOnlyList<StatementNode>? otherwise, int line, int column) : StatementNode(line, column)
{
    public override void Render(RenderContext context)
    {
        List<object?> items = TemplateOperations.Iterate(iterable.Evaluate(context), iterable);
        RenderScope outer = context.Scope;
        if (filter is not null)
        {
            // jinja2 filters before counting, so loop.length and loop.last see only the items kept.
            var kept = new List<object?>();
            foreach (object? item in items)
            {
                context.Scope = new RenderScope(outer);
                Bind(context.Scope, item);
                if (TemplateValues.IsTrue(filter.Evaluate(context))) kept.Add(item);
            }
            context.Scope = outer;
            items = kept;
        }
        try
        {
            for (int i = 0; i < items.Count; i++)
            {
                context.CountIteration(this);
                context.Scope = new RenderScope(outer);
                Bind(context.Scope, items[i]);
                context.Scope.Set("loop", new LoopInfo(i, items.Count, i > 0 ? items[i - 1] : null, i + 1 < items.Count ? items[i + 1] : null));
                RenderAll(body, context);
                LoopSignal signal = context.Signal;
                context.Signal = LoopSignal.None;
                if (signal == LoopSignal.Break) break;
            }
        }
        finally
        {
            context.Scope = outer;
        }
        if (items.Count == 0 && otherwise is not null) RenderAll(otherwise, context);
    }

    private void Bind(RenderScope scope, object? item)
    {
        if (targets.Count == 1)
        {
            scope.Set(targets[0], item);
            return;
        }
        List<object?> parts = TemplateOperations.Iterate(item, this);
        if (parts.Count != targets.Count)
            throw Error($"cannot unpack {parts.Count} values into {targets.Count} loop variables ({string.Join(", ", targets)})");
        for (int i = 0; i < targets.Count; i++) scope.Set(targets[i], parts[i]);
    }
}

/// <summary><c>{% set x = ... %}</c>, <c>{% set a, b = ... %}</c>, or <c>{% set ns.attr = ... %}</c> on a namespace.</summary>
internal sealed class SetNode(IReadOnlyList<string> names, string? attribute, ExpressionNode value, int line, int column)
    : StatementNode(line, column)
{
    public override void Render(RenderContext context)
    {
        object? result = value.Evaluate(context);
        if (attribute is not null)
        {
            context.Scope.TryGet(names[0], out object? target);
            if (target is not TemplateNamespace ns)
                throw Error($"cannot assign attribute '{attribute}' on '{names[0]}', which is a {TemplateValues.TypeName(target)}: only a namespace() object takes attribute assignments");
            ns.Attributes[attribute] = result;
            return;
        }
        if (names.Count == 1)
        {
            context.Scope.Set(names[0], result);
            return;
        }
        List<object?> parts = TemplateOperations.Iterate(result, this);
        if (parts.Count != names.Count)
            throw Error($"cannot unpack {parts.Count} values into {names.Count} names ({string.Join(", ", names)})");
        for (int i = 0; i < names.Count; i++) context.Scope.Set(names[i], parts[i]);
    }
}

/// <summary><c>{% set x %}...{% endset %}</c>: the rendered body as a string.</summary>
internal sealed class SetBlockNode(string name, IReadOnlyList<StatementNode> body, int line, int column) : StatementNode(line, column)
{
    public override void Render(RenderContext context)
    {
        int start = context.Output.Length;
        RenderAll(body, context);
        string text = context.Output.ToString(start, context.Output.Length - start);
        context.Output.Length = start;
        context.Scope.Set(name, text);
    }
}

internal sealed class LoopControlNode(LoopSignal signal, int line, int column) : StatementNode(line, column)
{
    public override void Render(RenderContext context) => context.Signal = signal;
}

// ---- Expressions ------------------------------------------------------------------------------------------------

internal abstract class ExpressionNode(int line, int column) : TemplateNode(line, column)
{
    public abstract object? Evaluate(RenderContext context);
}

internal sealed class LiteralNode(object? value, int line, int column) : ExpressionNode(line, column)
{
    public object? Value { get; } = value;
    public override object? Evaluate(RenderContext context) => Value;
}

internal sealed class NameNode(string name, int line, int column) : ExpressionNode(line, column)
{
    public string Name { get; } = name;

    public override object? Evaluate(RenderContext context) =>
        context.Scope.TryGet(Name, out object? value) ? value : new Undefined($"'{Name}' is undefined");
}

internal sealed class ListNode(IReadOnlyList<ExpressionNode> items, bool isTuple, int line, int column) : ExpressionNode(line, column)
{
    public override object? Evaluate(RenderContext context)
    {
        IEnumerable<object?> values = items.Select(x => x.Evaluate(context));
        return isTuple ? new TemplateTuple(values) : values.ToList();
    }
}

internal sealed class DictNode(IReadOnlyList<(ExpressionNode Key, ExpressionNode Value)> pairs, int line, int column) : ExpressionNode(line, column)
{
    public override object? Evaluate(RenderContext context)
    {
        var dict = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (key, value) in pairs)
        {
            if (key.Evaluate(context) is not string k)
                throw key.Error("dictionary keys must be strings in chat templates");
            dict[k] = value.Evaluate(context);
        }
        return dict;
    }
}

/// <summary><c>obj.name</c> (attribute first, then item, as jinja2's getattr) or <c>obj[key]</c> (item first).</summary>
internal sealed class GetNode(ExpressionNode target, ExpressionNode key, bool isAttribute, int line, int column) : ExpressionNode(line, column)
{
    public override object? Evaluate(RenderContext context) =>
        TemplateOperations.Get(target.Evaluate(context), key.Evaluate(context), isAttribute, this);
}

internal sealed class SliceNode(ExpressionNode target, ExpressionNode? start, ExpressionNode? stop, ExpressionNode? step, int line, int column)
    : ExpressionNode(line, column)
{
    public override object? Evaluate(RenderContext context) =>
        TemplateOperations.Slice(target.Evaluate(context), start?.Evaluate(context), stop?.Evaluate(context), step?.Evaluate(context), this);
}

internal sealed class CallNode(ExpressionNode callee, IReadOnlyList<ExpressionNode> args, IReadOnlyList<(string Name, ExpressionNode Value)> kwargs,
    int line, int column) : ExpressionNode(line, column)
{
    public override object? Evaluate(RenderContext context)
    {
        object? function = callee.Evaluate(context);
        if (function is Undefined u) throw u.Fail(Line, Column);
        if (function is not TemplateCallable callable)
            throw Error($"a {TemplateValues.TypeName(function)} is not callable");
        var positional = args.Select(a => a.Evaluate(context)).ToList();
        var named = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, value) in kwargs) named[name] = value.Evaluate(context);
        try
        {
            return callable.Invoke(positional, named);
        }
        catch (TemplateArgumentException e)
        {
            throw Error($"{callable.Name}(): {e.Message}");
        }
    }
}

/// <summary><c>value | name(args)</c>.</summary>
internal sealed class FilterNode(ExpressionNode value, string name, IReadOnlyList<ExpressionNode> args,
    IReadOnlyList<(string Name, ExpressionNode Value)> kwargs, int line, int column) : ExpressionNode(line, column)
{
    public override object? Evaluate(RenderContext context)
    {
        object? input = value.Evaluate(context);
        var positional = args.Select(a => a.Evaluate(context)).ToList();
        var named = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (n, v) in kwargs) named[n] = v.Evaluate(context);
        try
        {
            return TemplateBuiltins.ApplyFilter(name, input, positional, named, this);
        }
        catch (TemplateArgumentException e)
        {
            throw Error($"filter '{name}': {e.Message}");
        }
    }
}

/// <summary><c>value is [not] name(args)</c>.</summary>
internal sealed class TestNode(ExpressionNode value, string name, IReadOnlyList<ExpressionNode> args, bool negated, int line, int column)
    : ExpressionNode(line, column)
{
    public override object? Evaluate(RenderContext context)
    {
        object? input = value.Evaluate(context);
        var positional = args.Select(a => a.Evaluate(context)).ToList();
        bool result;
        try
        {
            result = TemplateBuiltins.ApplyTest(name, input, positional, this);
        }
        catch (TemplateArgumentException e)
        {
            throw Error($"test '{name}': {e.Message}");
        }
        return result != negated;
    }
}

internal sealed class UnaryNode(string op, ExpressionNode operand, int line, int column) : ExpressionNode(line, column)
{
    public override object? Evaluate(RenderContext context)
    {
        object? value = operand.Evaluate(context);
        if (op == "not") return !TemplateValues.IsTrue(value);
        return TemplateOperations.Negate(value, op == "-", this);
    }
}

internal sealed class BinaryNode(string op, ExpressionNode left, ExpressionNode right, int line, int column) : ExpressionNode(line, column)
{
    public override object? Evaluate(RenderContext context)
    {
        switch (op)
        {
            case "and":
            {
                object? l = left.Evaluate(context);
                return TemplateValues.IsTrue(l) ? right.Evaluate(context) : l;
            }
            case "or":
            {
                object? l = left.Evaluate(context);
                return TemplateValues.IsTrue(l) ? l : right.Evaluate(context);
            }
            default:
                return TemplateOperations.Binary(op, left.Evaluate(context), right.Evaluate(context), this);
        }
    }
}

/// <summary><c>a == b</c>, <c>a &lt; b &lt; c</c> (chained as in Python), <c>a in b</c>, <c>a not in b</c>.</summary>
internal sealed class CompareNode(ExpressionNode first, IReadOnlyList<(string Op, ExpressionNode Operand)> rest, int line, int column)
    : ExpressionNode(line, column)
{
    public override object? Evaluate(RenderContext context)
    {
        object? left = first.Evaluate(context);
        foreach (var (op, operand) in rest)
        {
            object? right = operand.Evaluate(context);
            if (!TemplateOperations.Compare(op, left, right, this)) return false;
            left = right;
        }
        return true;
    }
}

/// <summary><c>a if condition else b</c>; without <c>else</c> the value is undefined when the condition is false.</summary>
internal sealed class ConditionalNode(ExpressionNode then, ExpressionNode condition, ExpressionNode? otherwise, int line, int column)
    : ExpressionNode(line, column)
{
    public override object? Evaluate(RenderContext context) =>
        TemplateValues.IsTrue(condition.Evaluate(context)) ? then.Evaluate(context)
        : otherwise is null ? new Undefined("the conditional expression has no else branch") : otherwise.Evaluate(context);
}

/// <summary>A builtin given arguments it cannot take; the node calling it adds the place in the template.</summary>
internal sealed class TemplateArgumentException(string message) : Exception(message);
