using Strata.Cli.Img;

namespace Strata.Cli.Tests;

public sealed class ImgContextTests
{
    [Theory]
    [InlineData(0L, "0 B")]
    [InlineData(512L, "512 B")]
    [InlineData(1023L, "0.999 KiB")]
    [InlineData(4096L, "4 KiB")]
    [InlineData(200704L, "196 KiB")]
    [InlineData(1024000L, "0.977 MiB")]
    [InlineData(1610612736L, "1.5 GiB")]
    [InlineData(10737418240L, "10 GiB")]
    public void HumanSizesReadLikeQemuImgs(long bytes, string text) => Assert.Equal(text, ImgContext.HumanSize(bytes));
}
