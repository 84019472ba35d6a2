using Strata.Cli.Img;
using Strata.Formats;

namespace Strata.Cli.Tests;

public sealed class QemuImgCreateTextTests
{
    [Fact]
    public void AFormatQemuImgDoesNotKnowIsAnnouncedWithItsOwnSettingsInItsOwnOrder()
    {
        var plan = new ImageCreatePlan
        {
            Path = "x.toy",
            Format = "toy",
            Size = 1024,
            Creation = new SettingsOnlyPlan(1024, [new("size", "1024"), new("stripes", "4")]),
        };
        Assert.Equal("Formatting 'x.toy', fmt=toy size=1024 stripes=4", QemuImgCreateText.FormattingLine("x.toy", plan));
    }

    [Fact]
    public void Qcow2CompatIsAnnouncedOnlyWhenItWasGiven()
    {
        var settings = new List<KeyValuePair<string, string>> { new("compat", "1.1"), new("size", "1024") };
        var plan = new ImageCreatePlan { Path = "x", Format = "qcow2", Size = 1024, Creation = new SettingsOnlyPlan(1024, settings) };
        Assert.Equal("Formatting 'x', fmt=qcow2 size=1024", QemuImgCreateText.FormattingLine("x", plan));
        Assert.Equal("Formatting 'x', fmt=qcow2 size=1024 compat=1.1",
            QemuImgCreateText.FormattingLine("x", plan with { GivenOptions = new HashSet<string> { "compat" } }));
    }

    [Fact]
    public void TheHelpOfEveryRegisteredFormatListsEachOfItsOptionsWithItsType()
    {
        foreach (var driver in StandardDrivers.Registry.Formats)
        {
            string help = QemuImgCreateText.OptionHelp(driver);
            foreach (var option in driver.CreateOptions)
            {
                Assert.Contains($"  {option.Name}=<", help);
            }

            Assert.Equal(driver.CreateOptions.Count + 1, help.TrimEnd('\n').Split('\n').Length);
        }
    }
}
