namespace Strata.Formats.Qcow2;

/// <summary>
/// A bounded write-back cache of metadata tables (L2 tables or refcount blocks) keyed by their host
/// offset. Not thread-safe: the node uses it under its metadata lock. Eviction only drops clean
/// tables; the node writes dirty ones back in dependency order before asking again.
/// </summary>
internal sealed class Qcow2MetadataCache<T>
    where T : class
{
    private readonly Dictionary<long, Slot> _slots = [];
    private long _clock;

    public Qcow2MetadataCache(int capacity) => Capacity = Math.Max(2, capacity);

    public int Capacity { get; }

    public int Count => _slots.Count;

    public bool IsFull => _slots.Count >= Capacity;

    public int DirtyCount { get; private set; }

    public bool TryGet(long offset, out T table)
    {
        if (_slots.TryGetValue(offset, out var slot))
        {
            slot.LastUse = ++_clock;
            table = slot.Table;
            return true;
        }

        table = null!;
        return false;
    }

    public void Add(long offset, T table, bool dirty)
    {
        _slots[offset] = new Slot(table) { Dirty = dirty, LastUse = ++_clock };
        if (dirty)
        {
            DirtyCount++;
        }
    }

    public void MarkDirty(long offset)
    {
        var slot = _slots[offset];
        if (!slot.Dirty)
        {
            slot.Dirty = true;
            DirtyCount++;
        }
    }

    public void MarkClean(long offset)
    {
        if (_slots.TryGetValue(offset, out var slot) && slot.Dirty)
        {
            slot.Dirty = false;
            DirtyCount--;
        }
    }

    /// <summary>The dirty tables, in offset order (sequential writes).</summary>
    public List<(long Offset, T Table)> DirtyTables()
        => [.. _slots.Where(s => s.Value.Dirty).OrderBy(s => s.Key).Select(s => (s.Key, s.Value.Table))];

    /// <summary>Drops the least recently used clean table; false when every table is dirty.</summary>
    public bool TryEvictClean()
    {
        long victim = -1;
        long oldest = long.MaxValue;
        foreach (var (offset, slot) in _slots)
        {
            if (!slot.Dirty && slot.LastUse < oldest)
            {
                oldest = slot.LastUse;
                victim = offset;
            }
        }

        return victim >= 0 && _slots.Remove(victim);
    }

    public void Remove(long offset)
    {
        if (_slots.Remove(offset, out var slot) && slot.Dirty)
        {
            DirtyCount--;
        }
    }

    public void Clear()
    {
        _slots.Clear();
        DirtyCount = 0;
    }

    private sealed class Slot(T table)
    {
        public T Table { get; } = table;

        public bool Dirty { get; set; }

        public long LastUse { get; set; }
    }
}
