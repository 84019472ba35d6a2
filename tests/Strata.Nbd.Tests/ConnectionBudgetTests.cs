using Strata.Nbd.Server;

namespace Strata.Nbd.Tests;

public sealed class ConnectionBudgetTests
{
    [Fact]
    public async Task TakeWaitsUntilEnoughIsGivenBack()
    {
        var budget = new ConnectionBudget(100);
        Assert.True(budget.TryTake(70));
        Assert.False(budget.TryTake(40));
        var waiting = Task.Run(() => budget.Take(40));
        await Task.Delay(50);
        Assert.False(waiting.IsCompleted, "a take went past a spent budget");
        budget.Give(70);
        await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(budget.TryTake(61));
        Assert.True(budget.TryTake(60));
    }

    [Fact]
    public async Task ClosingWakesAWaitingTake()
    {
        var budget = new ConnectionBudget(10);
        budget.Take(10);
        var waiting = Task.Run(() => budget.Take(1));
        budget.Close();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public void MoreThanTheLimitCanNeverBeTaken()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConnectionBudget(10).Take(11));
    }
}
