import math

import pytest

from nin.config import TrainConfig
from nin.train.run import lr_schedule
from nin.train.schedule import (one_cycle_lr, paper_lr, paper_should_stop, plateau_count, step_lr, time_cycle_lr,
                                warmup_factor)


def test_warmup_is_linear_then_flat():
    assert [warmup_factor(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0


@pytest.mark.parametrize("step, expected", [
    (0, 0.01), (9, 0.1),                  # warm-up over 10 steps to the peak
    (10, 0.1),                            # start of the cosine
    (60, 0.05),                           # half way through the decay
    (110, 0.0), (200, 0.0),               # the end, and past it
])
def test_one_cycle_table(step, expected):
    assert math.isclose(one_cycle_lr(step, total_steps=110, peak_lr=0.1, warmup_steps=10), expected, abs_tol=1e-12)


@pytest.mark.parametrize("step, fraction, expected", [
    (0, 0.0, 0.01), (9, 0.0, 0.1),        # the same warm-up over 10 steps
    (500, 0.0, 0.1), (500, 0.5, 0.05),    # then the cosine follows the time used, whatever the step
    (10, 1.0, 0.0), (900, 1.3, 0.0),      # the budget's end, and past it
])
def test_time_cycle_table(step, fraction, expected):
    assert math.isclose(time_cycle_lr(step, fraction, peak_lr=0.1, warmup_steps=10), expected, abs_tol=1e-12)


def test_plateau_count_table():
    # min_delta 0.05 points, patience 2
    assert plateau_count([], 2, 0.05) == 0
    assert plateau_count([50, 60, 70, 80], 2, 0.05) == 0
    assert plateau_count([50, 60, 60.04, 59], 2, 0.05) == 1            # two epochs without > 0.05 gain
    assert plateau_count([50, 60, 60, 59, 61, 61, 61], 2, 0.05) == 2   # improvement resets the count
    assert plateau_count([50, 50, 50, 50, 50, 50, 50], 2, 0.05) == 3


def test_paper_lr_divides_by_ten_twice_then_stops():
    assert [paper_lr(0.1, k) for k in range(4)] == pytest.approx([0.1, 0.01, 0.001, 0.001])
    assert [paper_should_stop(k) for k in range(4)] == [False, False, False, True]


def test_step_lr_follows_the_authors_epochs():
    # cuda-convnet README for CIFAR-10: epochs 1-200 at the rate, 201-230 at a tenth, 231-260 at a hundredth
    rates = [step_lr(0.1, epoch, [200, 230]) for epoch in (0, 199, 200, 229, 230, 259)]
    assert rates == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_fixed_drops_replace_the_plateau_rule():
    cfg = TrainConfig(dataset="mnist", recipe="paper", lr_drop_epochs=[10, 20], warmup_epochs=0).resolved()
    flat = [50.0] * 7   # two plateaus by the paper's rule (patience 3), which would have divided the rate twice
    assert paper_lr(cfg.lr, plateau_count(flat, cfg.patience, cfg.min_delta)) == pytest.approx(cfg.lr / 100)
    assert lr_schedule(cfg, 10, flat)(0) == pytest.approx(cfg.lr)
    assert lr_schedule(cfg, 10, [50.0] * 10)(0) == pytest.approx(cfg.lr / 10)   # the 11th epoch: after one drop
    assert lr_schedule(cfg, 10, [50.0] * 20)(0) == pytest.approx(cfg.lr / 100)


def test_the_recipes_are_values_that_a_config_starts_from():
    from nin.config import RECIPE_FIELDS
    from nin.recipe import FAST, PAPER, RECIPES
    from nin.tables import RECIPES_BLOCK, recipes_table
    from nin.provenance import REPO

    assert RECIPES == {"paper": PAPER, "fast": FAST}
    for recipe in RECIPES.values():
        cfg = TrainConfig(dataset="mnist", recipe=recipe.name).resolved()
        assert {name: getattr(cfg, name) for name in RECIPE_FIELDS} == {name: getattr(recipe, name) for name in RECIPE_FIELDS}
    # a flag overrides one field and leaves the others the recipe's
    cfg = TrainConfig(dataset="mnist", recipe="paper", momentum=0.5).resolved()
    assert (cfg.momentum, cfg.weight_decay, cfg.lr) == (0.5, PAPER.weight_decay, PAPER.lr)
    assert RECIPES_BLOCK.read((REPO / "docs" / "recipes.md").read_text()) == recipes_table()


def test_no_code_branches_on_a_recipes_name():
    """Only nin.recipe.RECIPES picks a recipe by name; the code reads its fields."""
    import re

    from nin.provenance import REPO

    for path in (REPO / "src" / "nin").rglob("*.py"):
        assert not re.search(r"recipe\s*[!=]=\s*[\"']", path.read_text()), path
