"""The end-of-epoch budget watch (lkconv.engine.budget): evaluation spaced out where it is dear, epochs cut when the
measured rest of the run would pass the budget."""

from lkconv.engine.budget import EVAL_SHARE, FILL, EpochCosts, eval_interval, evals_left, projected_seconds, replan


def test_evals_left_counts_every_kth_epoch_and_the_last():
    for done in range(0, 12):
        for epochs in range(done, 25):
            for every in (1, 2, 3, 5, 7):
                want = sum(1 for e in range(done + 1, epochs + 1) if e % every == 0 or e == epochs)
                assert evals_left(done, epochs, every) == want, (done, epochs, every)


def test_eval_interval_raises_only_where_evaluation_is_dear():
    cheap = EpochCosts(train_s=10.0, other_s=0.5, eval_s=10.0 * EVAL_SHARE)
    assert eval_interval(cheap, 1, 40) == 1
    dear = EpochCosts(train_s=12.0, other_s=0.5, eval_s=16.0)  # detection near the end: 16 s per evaluation
    assert eval_interval(dear, 1, 40) == 4  # ceil(16 / (12 / 3))
    assert eval_interval(dear, 6, 40) == 6  # never below what it was
    assert eval_interval(EpochCosts(1.0, 0.0, 100.0), 1, 40) == 8  # at least 5 evaluations: 40 // 5


def test_replan_keeps_a_run_that_fits_and_cuts_one_that_does_not():
    costs = EpochCosts(train_s=10.0, other_s=1.0, eval_s=2.0)
    assert replan(5, 30, 1, costs, 25 * 13.0, auto_every=True) == (30, 1)  # 25 epochs of 13 s: fits exactly
    epochs, every = replan(5, 30, 1, costs, 20 * 13.0, auto_every=True)  # evaluation is cheap: only cutting helps
    assert every == 1 and epochs < 30
    assert projected_seconds(5, epochs, every, costs) <= 20 * 13.0 * FILL
    assert projected_seconds(5, epochs + 1, every, costs) > 20 * 13.0 * FILL


def test_replan_spaces_dear_evaluations_before_cutting_epochs():
    costs = EpochCosts(train_s=12.0, other_s=0.5, eval_s=16.0)
    left = 20 * 12.5 + 6 * 16.0  # 20 epochs left with 6 evaluations fit; with one per epoch they do not
    epochs, every = replan(13, 33, 1, costs, left, auto_every=True)
    assert (epochs, every) == (33, 4)
    epochs, every = replan(13, 33, 1, costs, left, auto_every=False)  # a given eval_every is kept: epochs go
    assert every == 1 and epochs < 33 and projected_seconds(13, epochs, 1, costs) <= left * FILL
    assert replan(13, 33, 1, costs, 0.0, auto_every=True)[0] == 14  # nothing left: one more epoch, the last
