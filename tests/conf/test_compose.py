"""Every option of every config group composes with Hydra and validates against its schema."""

import pytest
from hydra import compose, initialize_config_module

from pipeline import registry
from pipeline.config.cli import GROUPS, group_options

CASES = [(group, option) for group in GROUPS for option in sorted(group_options(group))]


def compose_with(*overrides: str):
    with initialize_config_module(config_module="conf", version_base=None):
        return compose(config_name="config", overrides=list(overrides))


def check(cfg) -> None:
    """Validate every section the way a run does before it starts (the task checks its data)."""
    from pipeline.run.runner import validate

    validate(cfg)


def overrides_for(group: str, option: str) -> list[str]:
    """A corpus only makes sense with task=lm, tagged sentences with task=tagging;
    everything else composes on its own."""
    kind = compose_with(f"data={option}").data.get("type") if group == "data" else None
    task = {"corpus": "lm", "tagged": "tagging"}.get(kind)
    return [f"task={task}", f"data={option}"] if task else [f"{group}={option}"]


def test_every_group_has_options():
    assert len(CASES) >= 20
    for group in GROUPS:
        assert group_options(group), group


@pytest.mark.parametrize("group, option", CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_option_composes_and_validates(group, option):
    cfg = compose_with(*overrides_for(group, option))
    if group in registry.ALL:
        assert cfg[group].name == option
    check(cfg)


def test_defaults_are_the_sentiment_task_on_imdb_with_an_lstm():
    cfg = compose_with()
    assert cfg.task.name == "sentiment" and cfg.data.name == "imdb"
    assert cfg.encoder.name == "lstm" and cfg.head.name == "classifier"


def test_topic_task_selects_trec_and_data_can_still_be_overridden():
    assert compose_with("task=topic").data.name == "trec"
    assert compose_with("task=topic", "data=ag_news").data.name == "ag_news"
    assert compose_with("task=sentiment", "data=sst2").data.name == "sst2"


def test_documented_keys_exist():
    cfg = compose_with()
    for key in (
        "embedding.dim",
        "encoder.hidden_size",
        "encoder.num_layers",
        "encoder.bidirectional",
        "encoder.dropout",
        "tokenizer.vocab_size",
        "data.max_length",
        "data.max_train_samples",
        "data.max_eval_samples",
        "optimizer.lr",
        "trainer.batch_size",
        "trainer.max_epochs",
        "trainer.device",
        "seed",
        "tracking.uri",
    ):
        node, *path = key.split(".")
        value = cfg[node]
        for part in path:
            assert part in value, key
