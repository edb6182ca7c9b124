"""A component's suggested settings apply only where the user left the default."""

from hydra import compose, initialize_config_module

from pipeline.config.schemas import schema_default
from pipeline.config.suggestions import (
    Suggestion,
    apply_suggestions,
    describe_applied,
    suggestions_of,
)
from pipeline.run.runner import validate


def compose_with(*overrides: str):
    with initialize_config_module(config_module="conf", version_base=None):
        return compose(config_name="config", overrides=list(overrides))


def test_transformer_suggests_its_own_lr_and_warmup():
    cfg = compose_with("encoder=transformer")
    applied = apply_suggestions(cfg, suggestions_of(cfg), given={"encoder"})
    assert {s.key for s in applied} == {
        "optimizer.lr",
        "optimizer.schedule",
        "optimizer.warmup_ratio",
        "embedding.init_scale",
    }
    assert cfg.optimizer.lr == 1e-3
    assert cfg.optimizer.schedule == "linear_warmup"
    assert cfg.embedding.init_scale == "table"
    assert all(s.source == "encoder=transformer" for s in applied)


def test_a_suggested_key_the_chosen_embedding_lacks_is_skipped():
    cfg = compose_with("encoder=transformer", "embedding=char_cnn")
    applied = apply_suggestions(cfg, suggestions_of(cfg), given={"encoder", "embedding"})
    assert "embedding.init_scale" not in {s.key for s in applied}
    assert "init_scale" not in cfg.embedding


def test_recurrent_encoders_suggest_nothing():
    cfg = compose_with("encoder=lstm")
    assert suggestions_of(cfg) == []
    assert cfg.optimizer.lr == 2e-3


def test_a_key_on_the_command_line_wins():
    cfg = compose_with("encoder=transformer", "optimizer.lr=3e-4")
    applied = apply_suggestions(cfg, suggestions_of(cfg), given={"encoder", "optimizer.lr"})
    assert cfg.optimizer.lr == 3e-4
    assert "optimizer.lr" not in {s.key for s in applied}
    assert cfg.optimizer.schedule == "linear_warmup"  # the others still apply


def test_a_value_a_preset_changed_wins():
    """An experiment or task preset that set the key (value != default) is not overridden,
    even though the key is not on the command line."""
    cfg = compose_with("encoder=transformer")
    cfg.optimizer.lr = 3e-3  # as a preset would
    apply_suggestions(cfg, suggestions_of(cfg), given=set())
    assert cfg.optimizer.lr == 3e-3


def test_the_chosen_options_own_default_counts():
    """optimizer=sgd has lr 0.1 by default: still the default, so the suggestion applies."""
    cfg = compose_with("encoder=transformer", "optimizer=sgd")
    assert schema_default("optimizer.lr", cfg) == 0.1
    apply_suggestions(cfg, suggestions_of(cfg), given={"encoder", "optimizer"})
    assert cfg.optimizer.lr == 1e-3


def test_unknown_keys_never_apply():
    cfg = compose_with()
    odd = [
        Suggestion("nosuch.key", 1, "test"),
        Suggestion("trainer.nosuch", 1, "test"),
        Suggestion("seed", 1, "test"),  # a root key: no schema default
    ]
    assert apply_suggestions(cfg, odd, given=set()) == []


def test_a_run_validates_with_the_suggestions_applied_and_says_so():
    cfg = compose_with("encoder=transformer")
    sections = validate(cfg)
    assert sections.optimizer.lr == 1e-3
    assert sections.optimizer.schedule == "linear_warmup"
    (line,) = describe_applied(sections.suggested)
    assert line.startswith("settings suggested by encoder=transformer: optimizer.lr=0.001")
