"""Config schemas of the core's own groups (optimizer, trainer, tracking, task).

Each schema is a dataclass stored in Hydra's ConfigStore, so Hydra type-checks overrides
(``trainer.batch_size=abc`` fails at composition) and ``--help`` shows the fields.
Bounds in field metadata are checked by :func:`pipeline.registry.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.registry import describe, store_deferred, to_dataclass

_ONE_EXCLUSIVE = {"min": 0.0, "max": 1.0, "max_exclusive": True}


@dataclass
class OptimizerConfig:
    name: str = describe("optimizer", "adamw", choices=["adamw", "adam", "sgd"])
    lr: float = describe("learning rate", 2e-3, min=1e-12)
    weight_decay: float = describe(
        "decoupled weight decay (adamw) or L2 (adam, sgd)", 0.01, min=0.0
    )
    momentum: float = describe("momentum (sgd only)", 0.0, **_ONE_EXCLUSIVE)
    fused: bool | None = describe("fused kernels; null = use them where torch has them", None)
    decay: float = describe(
        "multiply the lr by this each epoch after decay_after epochs (Zaremba et al.: 0.5 "
        "after 4 for the small PTB model); 1 = off",
        1.0,
        min=0.0,
        max=1.0,
    )
    decay_after: int = describe("epochs at the full lr before decay starts", 0, min=0)
    plateau_factor: float = describe(
        "multiply the lr by this whenever the monitored validation metric does not improve; "
        "1 = off",
        1.0,
        min=0.0,
        max=1.0,
    )
    schedule: str = describe(
        "the lr schedule. epoch: set each epoch by decay, decay_after and plateau_factor "
        "(a constant lr while they are off). The others set it after every optimizer step "
        "over the whole run (max_epochs x the steps of an epoch), from lr as the peak: "
        "onecycle (torch's OneCycleLR: up then down to lr/2.5e5), cosine (CosineAnnealingLR "
        "to 0, after any warmup), linear_warmup (linear up over the warmup, then linear "
        "down to 0), slanted_triangular (ULMFiT: up over cut_frac of the steps, then down "
        "to lr/ratio)",
        "epoch",
        choices=["epoch", "onecycle", "cosine", "linear_warmup", "slanted_triangular"],
    )
    warmup_steps: int = describe(
        "optimizer steps of linear warmup (cosine, linear_warmup; the rise of onecycle); "
        "0 = use warmup_ratio",
        0,
        min=0,
    )
    warmup_ratio: float = describe(
        "warmup as a fraction of the run's optimizer steps when warmup_steps is 0; 0 = no "
        "warmup (onecycle: torch's 0.3)",
        0.0,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )
    cut_frac: float = describe(
        "slanted_triangular: fraction of the steps over which the lr rises",
        0.1,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )
    ratio: float = describe(
        "slanted_triangular: how many times smaller the lowest lr is than the peak", 32.0, min=1.0
    )
    layer_lr_decay: float = describe(
        "discriminative learning rates (ULMFiT: 2.6): the top layer group (pooler and head) "
        "trains at lr, each group below it (encoder layers, then the embedding) at the lr of "
        "the group above divided by this, under every schedule; 1 = off (one lr)",
        1.0,
        min=1.0,
    )
    average: str = describe(
        "weight averaging: validation, test, best.pt and the logged model use the averaged "
        "weights (training goes on with its own). ema: an exponential moving average of "
        "every step's weights (ema_decay); ntasgd: a running mean of every step's weights "
        "from when the monitored metric has not improved for ntasgd_patience epochs "
        "(Merity et al. 2017's NT-ASGD, with any optimizer); none = off",
        "none",
        choices=["none", "ema", "ntasgd"],
    )
    ema_decay: float = describe(
        "average=ema: the weight of the past at each step (0.999: about the last 1000 steps)",
        0.999,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )
    ntasgd_patience: int = describe(
        "average=ntasgd: epochs without improvement of trainer.monitor before averaging "
        "starts (Merity's n)",
        5,
        min=1,
    )


@dataclass
class TrainerConfig:
    max_epochs: int = describe("training epochs (early stopping may end sooner)", 6, min=1)
    batch_size: int = describe("training batch size", 64, min=1)
    eval_batch_size: int = describe("batch size for validation and test", 256, min=1)
    device: str = describe("auto (CUDA when present) | cpu | cuda | cuda:N", "auto")
    amp: bool = describe("mixed precision on CUDA (bf16 where supported, else fp16)", True)
    amp_dtype: str = describe(
        "autocast dtype under amp on CUDA: auto (bf16 where the GPU has it, else fp16) | bf16 "
        "| fp16 (always with a GradScaler)",
        "auto",
        choices=["auto", "bf16", "fp16"],
    )
    amp_rnn: str = describe(
        "RNN layers (nn.LSTM/GRU/RNN) under amp on CUDA: fp32 (outside autocast: safe, the "
        "rest still in amp_dtype) | autocast (cuDNN runs them in fp16 whatever amp_dtype "
        "says, so the loss is always scaled by a GradScaler)",
        "fp32",
        choices=["fp32", "autocast"],
    )
    grad_clip: float = describe("max gradient norm; 0 turns clipping off", 1.0, min=0.0)
    monitor: str = describe("validation metric for early stopping and best.pt", "val/accuracy")
    monitor_mode: str = describe(
        "whether the monitored metric should go up or down", "max", choices=["max", "min"]
    )
    patience: int = describe("epochs without improvement before stopping; 0 = never stop", 2, min=0)
    bucket_size: int = describe(
        "batches per length bucket: rows are sorted by length within pools of "
        "batch_size * bucket_size shuffled rows; 1 turns bucketing off",
        50,
        min=1,
    )
    bptt: int = describe(
        "language models: steps per truncated back-propagation window (state carried across)",
        35,
        min=1,
    )
    ar_alpha: float = describe(
        "language models: activation regularisation (AWD-LSTM), alpha * mean(h^2) of the "
        "encoder's output over real tokens, added to the gradient (not to the reported "
        "train/loss). 0 = off",
        0.0,
        min=0.0,
    )
    tar_beta: float = describe(
        "language models: temporal activation regularisation (AWD-LSTM), beta * mean((h_t - "
        "h_{t-1})^2) over consecutive real tokens, added to the gradient (not to the "
        "reported train/loss). 0 = off",
        0.0,
        min=0.0,
    )
    bptt_jitter: float = describe(
        "language models: variable window lengths (AWD-LSTM): each window's mean length is "
        "bptt (probability 0.95) or bptt/2, its length drawn from N(mean, bptt_jitter), at "
        "least min(5, bptt), and that step's lr scaled by length / bptt; drawn from the run's "
        "seed and the epoch, so runs and resumes repeat them. AWD used 5. 0 = fixed windows",
        0.0,
        min=0.0,
    )
    unfreeze: str = describe(
        "gradual: ULMFiT's gradual unfreezing: epoch 1 trains only the top layer group "
        "(pooler and head), each later epoch also the next group below (encoder layers, "
        "then the embedding) until all train; frozen weights get no gradient and no update. "
        "none: every layer trains from the start",
        "none",
        choices=["none", "gradual"],
    )
    num_threads: int | None = describe("CPU threads for torch; null = torch's default", None, min=1)
    progress: str = describe(
        "auto (bar on a terminal, log lines otherwise) | bar | log | none",
        "auto",
        choices=["auto", "bar", "log", "none"],
    )
    log_every_n_steps: int = describe("steps between loss reads in log mode", 100, min=1)
    checkpoint_dir: str | None = describe(
        "where last.pt/best.pt go; null = the run's Hydra output directory", None
    )
    compile: bool = describe(
        "torch.compile the model for training (a one-off compile per input shape); skipped "
        "with a warning for models with LSTM/GRU/RNN layers, where it gains nothing",
        False,
    )
    resume: str | None = describe(
        "go on with an interrupted run, exactly where it stopped: its last.pt (or output "
        "folder), its MLflow run id, or auto (the newest unfinished run with this config)",
        None,
    )
    data_on_device: str = describe(
        "keep the tokenized splits on the GPU, moved once, and index every batch there (no "
        "per-step host indexing, pinning or copies): auto = on CUDA when they take at most a "
        "tenth of the free GPU memory | true | false. The same batches; no effect on CPU",
        "auto",
        choices=["auto", "true", "false"],
    )
    tf32: bool = describe(
        "TF32 matmuls and cuDNN RNNs on CUDA (Ampere and later): fp32 range, 10-bit "
        "mantissa, several times faster; false = full fp32. No effect on CPU",
        True,
    )
    diagnostics: bool = describe(
        "per epoch, on a fixed validation batch: gate saturation per layer and gate "
        "(encoders with a trace), gradient norms per part, and a plot of the loss's gradient "
        "norm per input time step (diag/* metrics, diagnostics/ artifacts). Training is "
        "unchanged",
        False,
    )
    deterministic: bool = describe(
        "reproducible GPU runs (and exact resume there): torch's deterministic algorithms, "
        "CUBLAS_WORKSPACE_CONFIG=:4096:8, cuDNN deterministic, stacked RNNs with dropout "
        "layer by layer. Slower; an op with no deterministic kernel stops the run naming "
        "itself. The CPU is deterministic already",
        False,
    )

    def __post_init__(self) -> None:
        # ``trainer.data_on_device=true`` reaches a str field as "True" (YAML booleans).
        self.data_on_device = str(self.data_on_device).lower()


@dataclass
class TrackingConfig:
    name: str = describe("tracking backend", "mlflow", choices=["mlflow", "none"])
    uri: str | None = describe(
        "MLflow tracking URI; null = MLflow's default "
        "(sqlite:///mlflow.db in the working directory)",
        None,
    )
    experiment: str | None = describe("experiment name; null = the task name", None)
    run_name: str | None = describe("run name; null = derived from what differs", None)
    log_model: bool = describe("log the trained model so it can be loaded back", True)
    retry_seconds: float = describe(
        "if the store stops answering mid-run: seconds between tries to reach it again (the "
        "calls are queued meanwhile and sent in order when it answers)",
        15.0,
        min=0.0,
    )
    final_wait_seconds: float = describe(
        "if the store is still down when the run ends: seconds to wait for it before leaving "
        "the run's record in the local journal (tracking.jsonl)",
        30.0,
        min=0.0,
    )
    register_as: str | None = describe(
        "classifiers: also register the logged model in the MLflow model registry under this "
        "name (a new version each run), so models:/<name>/<version> finds it; null = do not",
        None,
    )


@dataclass
class TaskConfig:
    name: str = describe("task name (also the MLflow experiment)", "sentiment")
    type: str = describe(
        "the task kind, i.e. what the model predicts: classification (a label per text), "
        "language_model (the next token of a stream), or a plugin's kind",
        "classification",
    )
    init_range: float | None = describe(
        "language models: initialise every weight ~ U(-r, r), as Zaremba et al.; "
        "null = each component's own initialisation",
        None,
        min=0.0,
    )
    sample_prompt: str | None = describe(
        "language models: prompt of the text sample logged each epoch; null = the first "
        "tokens of the validation split",
        None,
    )
    sample_tokens: int = describe("language models: tokens per logged sample; 0 = none", 200, min=0)
    label_smoothing: float = describe(
        "classification: the training loss's label smoothing (torch's cross_entropy "
        "label_smoothing: the target puts 1 - e on the label and e / classes on every class); "
        "validation and test losses stay the plain cross-entropy; 0 = off",
        0.0,
        min=0.0,
        max=1.0,
    )
    word_dropout: float = describe(
        "tagging: in training, each word becomes <unk> with probability a / (a + its count "
        "in train) (Kiperwasser & Goldberg 2016): rare words teach the <unk> vector the "
        "contexts unseen words come in; 0 = off",
        0.0,
        min=0.0,
    )


@dataclass
class ModelConfig:
    """Where the model starts from (``model.init_from``): a trained language model's
    embedding and encoder, its tokenizer and vocabulary carried over (pipeline.model.transfer)."""

    init_from: str | None = describe(
        "start from a trained language model: its run id, runs:/<id>/<model name>, a "
        "checkpoint (best.pt) or a run's output folder. Its tokenizer, embedding and encoder "
        "are carried over (the head and pooler start fresh); the embedding, encoder and "
        "tokenizer settings must match its own. null = train from scratch",
        None,
    )
    init_from_backward: str | None = describe(
        "bidirectional encoders: start the backward direction from a backward language model "
        "(one trained with data.reverse=true), given as for model.init_from (which gives the "
        "forward direction). null = the backward direction starts fresh",
        None,
    )


#: The optimizer group's options, each with its own defaults.
OPTIMIZERS: dict[str, OptimizerConfig] = {
    "adamw": OptimizerConfig(),
    "adam": OptimizerConfig(name="adam", lr=1e-3, weight_decay=0.0),
    "sgd": OptimizerConfig(name="sgd", lr=0.1, weight_decay=0.0, momentum=0.9),
}


def register_core_configs() -> None:
    """Store the core groups' options in Hydra's ConfigStore, and the plugins' options that
    :func:`pipeline.registry.deferred_config_store` kept (idempotent)."""
    from hydra.core.config_store import ConfigStore

    store_deferred()
    cs = ConfigStore.instance()
    for name, node in OPTIMIZERS.items():
        cs.store(group="optimizer", name=name, node=node)
    cs.store(group="trainer", name="default", node=TrainerConfig())
    cs.store(group="model", name="default", node=ModelConfig())
    cs.store(group="tracking", name="mlflow", node=TrackingConfig())
    cs.store(group="tracking", name="none", node=TrackingConfig(name="none", log_model=False))
    # The schema every task preset starts from (``- /task_base@task`` in conf/task/*.yaml).
    cs.store(name="task_base", node=TaskConfig())


#: What ``schema_default`` returns for a key no schema knows: equal to no value.
NO_DEFAULT: Any = object()


def schema_default(key: str, chosen: Any) -> Any:
    """The value a dotted key (``trainer.amp_dtype``, ``encoder.dropout``) has when nobody
    set it: its field default in the schema of the option ``chosen`` (a config or its dict)
    selects for that group, so ``optimizer=adam`` has its own lr. ``NO_DEFAULT`` otherwise."""
    import dataclasses

    from pipeline import registry

    group, _, name = key.partition(".")
    section = chosen.get(group) if hasattr(chosen, "get") else None
    if not name or not hasattr(section, "get"):
        return NO_DEFAULT  # a root key (seed) or a group the config does not hold
    option = section.get("name")
    if group == "optimizer" and option in OPTIMIZERS:
        return getattr(OPTIMIZERS[option], name, NO_DEFAULT)
    schema: Any = {
        "trainer": TrainerConfig,
        "optimizer": OptimizerConfig,
        "tracking": TrackingConfig,
        "task": TaskConfig,
        "model": ModelConfig,
    }.get(group)
    if schema is None and group in registry.ALL and option in registry.ALL[group]:
        schema = registry.ALL[group].get(str(option)).config
    found = {f.name: f for f in dataclasses.fields(schema)}.get(name) if schema else None
    if found is None:
        return NO_DEFAULT
    if found.default is not dataclasses.MISSING:
        return found.default
    if found.default_factory is not dataclasses.MISSING:
        return found.default_factory()
    return NO_DEFAULT


def component_configs(cfg: Any) -> dict[str, Any]:
    """The validated config dataclass of every model component, by group (no torch)."""
    from pipeline import registry

    return {
        group: registry.ALL[group].config_from(cfg[group])
        for group in ("embedding", "encoder", "pooler", "head")
    }


def typed(schema: type, node: Any, prefix: str) -> Any:
    """Convert a composed node into its dataclass and check its bounds."""
    config = to_dataclass(schema, node, prefix)
    if prefix == "trainer":
        _check_device(config.device)
    if prefix == "tracking":
        _check_registration(config)
    if prefix == "optimizer":
        _check_schedule(config)
    return config


def _check_device(device: str) -> None:
    from pipeline.errors import ConfigError

    if device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit()):
        return
    raise ConfigError(f"trainer.device={device!r} is not a device. Use auto, cpu, cuda or cuda:N.")


def _check_schedule(config: OptimizerConfig) -> None:
    """A per-step schedule owns the lr: refuse the per-epoch settings that would fight it."""
    from pipeline.errors import ConfigError

    epochwise = {"decay": config.decay, "plateau_factor": config.plateau_factor}
    clash = [f"optimizer.{k}={v}" for k, v in epochwise.items() if v != 1.0]
    if config.schedule != "epoch" and clash:
        raise ConfigError(
            f"optimizer.schedule={config.schedule} sets the lr every step, so it cannot be "
            f"combined with {' and '.join(clash)} (per-epoch changes). Use "
            "optimizer.schedule=epoch for those, or leave them at 1."
        )
    if config.warmup_steps and config.warmup_ratio:
        raise ConfigError(
            f"optimizer.warmup_steps={config.warmup_steps} and optimizer.warmup_ratio="
            f"{config.warmup_ratio} both set the warmup: give one of them."
        )


def _check_registration(config: TrackingConfig) -> None:
    """``register_as`` needs a model logged to MLflow: say so before any training happens."""
    from pipeline.errors import ConfigError

    if config.register_as is None:
        return
    if not config.register_as.strip():
        raise ConfigError(
            "tracking.register_as is empty. Give the registered model a name "
            "(tracking.register_as=sentiment-lstm) or leave it out."
        )
    if config.name != "mlflow" or not config.log_model:
        raise ConfigError(
            f"tracking.register_as={config.register_as} registers the model logged to MLflow, "
            f"but this run logs none (tracking={config.name}, "
            f"tracking.log_model={str(config.log_model).lower()}). Use tracking=mlflow with "
            "tracking.log_model=true, or drop tracking.register_as."
        )


def check_root(cfg: Any) -> None:
    """``+_target_=...`` at the config's root: nothing is instantiated from it, so refuse it
    rather than ignore it (other root keys may be the user's own, for interpolations)."""
    from pipeline.errors import ConfigError
    from pipeline.registry import INSTANTIATE_KEYS, not_instantiated

    for key in INSTANTIATE_KEYS:
        if key in cfg:
            raise ConfigError(not_instantiated(key))
