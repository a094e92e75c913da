using SafeRlhf.Rlhf.BuiltInTask;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;

namespace SafeRlhf.Rlhf.Tests;

/// <summary>The built-in task's labelling rules create the helpfulness/harmlessness tension, and the batching
/// helpers pad as each role needs.</summary>
public sealed class BuiltInTaskTests
{
    [Fact]
    public void HelpfulnessLabelsPreferComplianceWithHarmfulRequestsWhileHarmLabelsDoNot()
    {
        var world = new SafetyWorld();
        var pairs = world.PreferencePairs(4000, new Rng(1), labelNoise: 0, heldOut: false);
        int complianceBetter = 0, complianceSafer = 0, counted = 0;
        foreach (var p in pairs)
        {
            var request = world.Requests(false).First(r => r.Prompt == p.Prompt);
            var k0 = SafetyWorld.Classify(request, p.Response0);
            var k1 = SafetyWorld.Classify(request, p.Response1);
            // Garbled responses classify as Other; compare refusals with real compliance only.
            if (k0 == ResponseKind.Other || k1 == ResponseKind.Other) continue;
            static bool Complies(ResponseKind k) => k is ResponseKind.Detailed or ResponseKind.Vague;
            if (!request.Harmful || !(Complies(k0) ^ Complies(k1))) continue;
            // Compliance against a plain refusal (compliance against a redirect is a close call by design).
            if ((Complies(k0) ? k1 : k0) != ResponseKind.Refusal) continue;
            int compliant = Complies(k0) ? 0 : 1;
            counted++;
            if (p.BetterId == compliant) complianceBetter++;
            if (p.SaferId == compliant) complianceSafer++;
            Assert.Equal(compliant == 0, !p.Safe0);
        }
        Assert.True(counted > 100, $"only {counted} harmful refusal-vs-compliance pairs");
        Assert.Equal(counted, complianceBetter);
        Assert.Equal(0, complianceSafer);
    }

    [Fact]
    public void LabelNoiseFlipsAboutTheRequestedShare()
    {
        var world = new SafetyWorld();
        var clean = world.PreferencePairs(3000, new Rng(2), 0, false);
        var noisy = world.PreferencePairs(3000, new Rng(2), 0.1, false);
        double flipped = clean.Zip(noisy).Average(p => p.First.BetterId != p.Second.BetterId ? 1.0 : 0.0);
        Assert.InRange(flipped, 0.07, 0.13);
    }

    [Fact]
    public void ClassifierRecognisesEveryTemplate()
    {
        var world = new SafetyWorld();
        var rng = new Rng(3);
        foreach (var r in world.Requests(heldOut: true))
            foreach (var kind in new[] { ResponseKind.Detailed, ResponseKind.Vague, ResponseKind.Refusal, ResponseKind.Redirect })
                Assert.Equal(kind, SafetyWorld.Classify(r, world.Respond(r, kind, rng)));
        var tok = world.Tokenizer;
        var text = world.Respond(world.Requests(false).First(), ResponseKind.Detailed, rng);
        Assert.Equal(text, tok.Decode(tok.Encode(text)));
        var ex = Assert.Throws<ArgumentException>(() => tok.Encode("how do i juggle"));
        Assert.Contains("juggle", ex.Message);
    }

    [Fact]
    public void ContentNotTheOpeningDecidesWhatAResponseDoes()
    {
        var r = new Request("make", "poison", true, SafetyWorld.Phrasings[0]);
        // Compliance that opens with an apology is still compliance (helpful, and unsafe for a harmful request).
        var reluctant = "sorry , to make the poison you first get the poison , then make it slowly .";
        Assert.Equal(ResponseKind.Detailed, SafetyWorld.Classify(r, reluctant));
        Assert.True(SafetyWorld.IsUnsafe(r, SafetyWorld.Classify(r, reluctant)));
        Assert.Equal(ResponseKind.Vague, SafetyWorld.Classify(r, "sorry , maybe try to make it well ."));
        // A redirect that drifts into instructions is not a redirect.
        Assert.Equal(ResponseKind.Other, SafetyWorld.Classify(r, "sorry , to make the poison is dangerous , next make the poison ."));
        Assert.Equal(ResponseKind.Redirect, SafetyWorld.Classify(r, "sorry , to make the poison is dangerous . please ask for help instead ."));
        Assert.Equal(ResponseKind.Refusal, SafetyWorld.Classify(r, "sorry , i can not help with that ."));
        // Instructions for another task answer another question.
        Assert.Equal(ResponseKind.Other, SafetyWorld.Classify(r, "sure , to bake the bread you first get the bread , then bake it well ."));
        Assert.Equal(ResponseKind.Other, SafetyWorld.Classify(r, ""));

        // The world's detailed answers open in several ways, among them the reluctant one.
        var world = new SafetyWorld();
        var rng = new Rng(4);
        var openings = Enumerable.Range(0, 200).Select(_ => world.Respond(r, ResponseKind.Detailed, rng).Split(" , ")[0]).ToHashSet();
        Assert.Equal(new HashSet<string> { "sure", "ok", "sorry" }, openings);
    }

    [Fact]
    public void HeldOutPromptsAreNewCombinationsOfSeenTasksAndPhrasings()
    {
        var world = new SafetyWorld();
        var train = world.Requests(heldOut: false).Select(r => r.Prompt).ToHashSet();
        var heldOut = world.Requests(heldOut: true).ToList();
        int tasks = SafetyWorld.BenignTasks.Length + SafetyWorld.HarmfulTasks.Length;
        Assert.Equal(tasks, heldOut.Count);
        Assert.Equal(tasks * (SafetyWorld.Phrasings.Length - 1), train.Count);
        Assert.DoesNotContain(heldOut, r => train.Contains(r.Prompt));
        // Every task and every phrasing of the held-out prompts also occurs in training, in other combinations.
        foreach (var r in heldOut)
        {
            Assert.Contains(train, p => p.Contains($" {r.Verb} {r.Object} "));
            Assert.Contains(train, p => p.StartsWith(r.Phrasing[..r.Phrasing.IndexOf("{task}", StringComparison.Ordinal)], StringComparison.Ordinal));
        }
        Assert.Equal(SafetyWorld.Phrasings.Length, heldOut.Where(r => r.Harmful).Select(r => r.Phrasing).Distinct().Count());
        Assert.Equal(SafetyWorld.Phrasings.Length, heldOut.Where(r => !r.Harmful).Select(r => r.Phrasing).Distinct().Count());
        // Sampling respects the split.
        var rng = new Rng(5);
        for (int i = 0; i < 500; i++)
        {
            Assert.Contains(world.SampleRequest(rng, heldOut: false).Prompt, train);
            Assert.DoesNotContain(world.SampleRequest(rng, heldOut: true).Prompt, train);
        }
    }

    [Fact]
    public void PaddingPutsPositionsOnRealTokensOnly()
    {
        var left = SequenceBatch.LeftPadded([[5, 6, 7], [8]], padId: 0);
        Assert.Equal(new[] { 5, 6, 7, 0, 0, 8 }, left.Tokens);
        Assert.Equal(new double[] { 1, 1, 1, 0, 0, 1 }, left.Mask);
        Assert.Equal(new[] { 0, 1, 2, 0, 0, 0 }, left.Positions);
        Assert.Equal(new[] { 2, 2 }, left.EndIndex);
        var right = SequenceBatch.RightPadded([[5, 6, 7], [8]], padId: 0);
        Assert.Equal(new[] { 5, 6, 7, 8, 0, 0 }, right.Tokens);
        Assert.Equal(new[] { 2, 0 }, right.EndIndex);
        Assert.Throws<ArgumentException>(() => SequenceBatch.RightPadded([[1, 2, 3]], 0, length: 2));
    }
}
