using System.Buffers;
using System.Buffers.Binary;
using Strata.Block;

namespace Strata.Formats.Qcow2;

/// <summary>Creating a new image, laid out as qemu-img create does.</summary>
public sealed partial class Qcow2Node
{
    /// <summary>Writes a new empty image into <paramref name="file"/> (which it truncates), as qemu-img create does.</summary>
    /// <remarks>
    /// Layout: header cluster (with backing format, feature-name table, end marker, backing name),
    /// refcount table, refcount block(s), then the L1 table; the file ends where the L1 table ends.
    /// </remarks>
    public static async ValueTask CreateAsync(IBlockNode file, Qcow2CreateOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(options);
        var header = BuildHeader(options);
        int clusterSize = header.ClusterSize;
        long coverage = (long)clusterSize * (clusterSize / 8);
        long l1Entries = (options.Size + coverage - 1) / coverage;
        long l1Clusters = ((l1Entries * 8) + clusterSize - 1) / clusterSize;
        long perBlock = (long)clusterSize * 8 / options.RefcountBits;
        long entriesPerCluster = clusterSize / 8;

        // Refcount table at cluster 1, blocks after it, then the L1 table; all of them counted.
        long blocks = 1;
        long tableClusters = 1;
        while (true)
        {
            long used = 1 + tableClusters + blocks + l1Clusters;
            long needBlocks = (used + perBlock - 1) / perBlock;
            long needTable = (needBlocks + entriesPerCluster - 1) / entriesPerCluster;
            if (needBlocks == blocks && needTable == tableClusters)
            {
                break;
            }

            blocks = Math.Max(blocks, needBlocks);
            tableClusters = Math.Max(tableClusters, needTable);
        }

        long usedClusters = 1 + tableClusters + blocks + l1Clusters;
        long l1Offset = (1 + tableClusters + blocks) * clusterSize;
        header.L1Size = (int)l1Entries;
        header.L1TableOffset = l1Entries > 0 ? l1Offset : 0;
        header.RefcountTableOffset = clusterSize;
        header.RefcountTableClusters = (int)tableClusters;
        byte[] headerCluster = header.Serialize();

        // The tables are written once and dropped: pooled buffers, cleared first.
        int tableLength = (int)(tableClusters * clusterSize);
        int blocksLength = (int)(blocks * clusterSize);
        var table = ArrayPool<byte>.Shared.Rent(tableLength);
        var blockBytes = ArrayPool<byte>.Shared.Rent(blocksLength);
        try
        {
            table.AsSpan(0, tableLength).Clear();
            blockBytes.AsSpan(0, blocksLength).Clear();
            for (long j = 0; j < blocks; j++)
            {
                BinaryPrimitives.WriteInt64BigEndian(table.AsSpan((int)(j * 8)), (1 + tableClusters + j) * clusterSize);
            }

            for (long c = 0; c < usedClusters; c++)
            {
                long j = c / perBlock;
                Qcow2RefcountArray.Set(blockBytes.AsSpan((int)(j * clusterSize), clusterSize), header.RefcountOrder, (int)(c % perBlock), 1);
            }

            long fileEnd = l1Entries > 0 ? l1Offset + (l1Entries * 8) : l1Offset;
            await file.ResizeAsync(0, cancellationToken);
            await file.ResizeAsync(fileEnd, cancellationToken);
            await file.WriteAsync(0, headerCluster, WriteFlags.None, cancellationToken);
            await file.WriteAsync(clusterSize, table.AsMemory(0, tableLength), WriteFlags.None, cancellationToken);
            await file.WriteAsync((1 + tableClusters) * clusterSize, blockBytes.AsMemory(0, blocksLength), WriteFlags.None, cancellationToken);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(table);
            ArrayPool<byte>.Shared.Return(blockBytes);
        }

        await file.FlushAsync(cancellationToken);
    }

    private static Qcow2Header BuildHeader(Qcow2CreateOptions options)
    {
        if (options.Size < 0)
        {
            throw BlockException.Invalid("qcow2: the image size must not be negative");
        }

        int clusterSize = options.ClusterSize;
        if (clusterSize is < 512 or > (2 * 1024 * 1024) || (clusterSize & (clusterSize - 1)) != 0)
        {
            throw BlockException.Invalid($"qcow2: cluster size {clusterSize} must be a power of two between 512 and 2097152");
        }

        int version = options.Compat switch
        {
            "1.1" or "v3" => 3,
            "0.10" or "v2" => 2,
            _ => throw BlockException.Invalid($"qcow2: compat '{options.Compat}' is not one of 0.10, 1.1"),
        };
        int bits = options.RefcountBits;
        if (bits is < 1 or > 64 || (bits & (bits - 1)) != 0)
        {
            throw BlockException.Invalid($"qcow2: refcount_bits {bits} must be a power of two between 1 and 64");
        }

        if (version == 2 && bits != 16)
        {
            throw BlockException.Invalid("qcow2: compat=0.10 allows only refcount_bits=16");
        }

        if (version == 2 && options.LazyRefcounts)
        {
            throw BlockException.Invalid("qcow2: lazy refcounts need compat=1.1");
        }

        byte compression = options.CompressionType switch
        {
            "zlib" => Qcow2Compression.Zlib,
            "zstd" => Qcow2Compression.Zstd,
            _ => throw BlockException.Invalid($"qcow2: compression type '{options.CompressionType}' is not one of zlib, zstd"),
        };
        if (version == 2 && compression != Qcow2Compression.Zlib)
        {
            throw BlockException.Invalid("qcow2: compression type zstd needs compat=1.1");
        }

        if (options.BackingFormat is not null && options.BackingFile is null)
        {
            throw BlockException.Invalid("qcow2: a backing format needs a backing file");
        }

        int clusterBits = System.Numerics.BitOperations.Log2((uint)clusterSize);
        long coverage = (long)clusterSize * (clusterSize / 8);
        if (options.Size > coverage * (Qcow2Header.MaxL1Bytes / 8))
        {
            throw BlockException.Invalid($"qcow2: size {options.Size} is too large for cluster size {clusterSize}");
        }

        return new Qcow2Header
        {
            Version = version,
            ClusterBits = clusterBits,
            Size = options.Size,
            RefcountOrder = System.Numerics.BitOperations.Log2((uint)bits),
            CompressionType = compression,
            IncompatibleFeatures = compression == Qcow2Compression.Zstd ? Qcow2Features.IncompatibleCompressionType : 0,
            CompatibleFeatures = options.LazyRefcounts ? Qcow2Features.CompatibleLazyRefcounts : 0,
            BackingFile = options.BackingFile,
            BackingFormat = options.BackingFormat,
        };
    }
}
