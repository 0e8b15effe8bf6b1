"""Run configuration (pydantic): data, Stage 1 flow, Stage 2 menu training.

Loaded from YAML; ``key.sub=value`` overrides on the command line. Hardware
never changes any of these values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bundleflow.errors import InputError
from bundleflow.utils.device import available_memory_bytes
from bundleflow.utils.yaml_files import load_yaml, read_yaml

# counts beyond these are refused at config time (a typo such as menu.steps=1e26 would otherwise
# run for ever); sizes are checked against the memory available (RunConfig._fits_in_memory)
MAX_STEPS = 10_000_000
# GemNet's compatibility transform: a MILP with one choice per (grid profile, bidder, option);
# 2 bidders x 2 items at 16 levels and 16 elements is 2.2 million
MAX_GRID_CHOICES = 4_000_000


class _Strict(BaseModel):
    # no unknown keys; NaN and inf are refused for every float (lr, temperatures, budgets, values)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _booleans_are_not_numbers(cls, v, info):
        """``true`` for a count or a rate is a mistake, not 1 (pydantic would take it as 1)."""
        if isinstance(v, bool) and info.field_name is not None:
            kinds = {cls.model_fields[info.field_name].annotation}
            kinds |= set(getattr(next(iter(kinds)), "__args__", ()))
            if kinds & {int, float} and bool not in kinds:
                raise ValueError(f"must be a number, got the boolean {str(v).lower()}")
        return v


_GENERATOR_FIELDS = {"n_items", "n_atoms", "q", "low", "high"}  # describe generated data only


class DataConfig(_Strict):
    kind: Literal["uniform_atoms", "additive", "unit_demand", "file"] = "uniform_atoms"
    path: str | None = None  # for kind=file: CATS npz or bid text file
    n_items: int = Field(10, ge=1)
    n_atoms: int = Field(5, ge=1)
    q: float = Field(0.5, ge=0.0, le=1.0)
    low: float = Field(0.0, ge=0.0)
    high: float = Field(1.0, ge=0.0)
    n_train: int = Field(4000, ge=2)
    n_val: int = Field(1000, ge=1)
    n_test: int = Field(2000, ge=1)
    # bidders per profile: more than one needs menu.model=gemnet (each bidder's values are
    # drawn independently from the same distribution; kind=file: n_bidders rows per profile)
    n_bidders: int = Field(1, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self):
        if self.high < self.low:
            raise ValueError(f"data.high ({self.high}) must be >= data.low ({self.low})")
        if self.kind == "file" and not self.path:
            raise ValueError("data.kind=file needs data.path")
        if self.kind != "file" and self.path:
            raise ValueError(f"data.path is only read with data.kind=file (kind is {self.kind})")
        if self.kind == "file":
            generated = sorted(
                k
                for k in self.model_fields_set & _GENERATOR_FIELDS
                if getattr(self, k) != type(self).model_fields[k].default
            )
            if generated:
                raise ValueError(
                    f"data.kind=file takes the items and values from the file; remove "
                    f"{', '.join('data.' + k for k in generated)}"
                )
        return self


class FlowConfig(_Strict):
    hidden: int = Field(128, ge=1)
    n_quad: int = Field(16, ge=1)
    steps: int = Field(2000, ge=0, le=MAX_STEPS)
    batch: int = Field(512, ge=1)
    lr: float = Field(3e-3, gt=0)
    seed: int = 0
    checkpoint: str | None = None  # reuse a saved Stage 1 flow instead of training one


class MenuConfig(_Strict):
    # menu family: BundleFlow (the paper), RochetNet (item-wise lotteries), Bundle-RochetNet
    # (product lotteries with n_support sampled supports, resampled every resample_every steps)
    # gemnet: multi-bidder menus (bundleflow.mechanisms.multi; settings in the gemnet section)
    model: Literal["bundleflow", "rochetnet", "bundle_rochetnet", "gemnet"] = "bundleflow"
    resample_every: int = Field(50, ge=1)
    n_elements: int = Field(128, ge=1)
    n_support: int = Field(4, ge=1)
    steps: int = Field(1000, ge=0, le=MAX_STEPS)
    batch: int = Field(512, ge=1)
    lr: float = Field(0.02, gt=0)
    # softmax temperature in units of the value spread E[g] - min g of the training data's
    # grand-bundle values g (unchanged by a common offset in the values), annealed
    # geometrically from tau_start to tau_end
    tau_start: float = Field(0.05, gt=0)
    tau_end: float = Field(0.005, gt=0)
    log_every: int = Field(100, ge=1)
    # stop Stage 2 after this many seconds of training (0 = no limit); used by `bundleflow bench`
    time_budget_s: float = Field(0.0, ge=0)
    init_price_rounds: int = Field(2, ge=0)
    # the data-driven start: sure bundles placed at 0.5 +- corner / 2 along each item; starting
    # prices fitted on the first init_sample training bidders; the atom-menu start (and the
    # run's atom-menu baseline row) uses min(init_atoms, n_elements) frequent atoms
    corner: float = Field(0.9, gt=0, lt=1)
    # where Stage 2 starts (BundleFlow): "data" (the bundles above, priced exactly), "random"
    # (the paper: support points uniform in [0.05, 0.95]^m) or "mixed" (the first half of the
    # elements from the data, the rest random); init_spread > 0 gives each data element D - 1
    # neighbouring supports (its bundle with one item flipped) of that probability each, so
    # the gradient can move probability between distinct bundles
    init: Literal["data", "random", "mixed"] = "data"
    init_spread: float = Field(0.0, ge=0, lt=1)
    init_sample: int = Field(4000, ge=1)
    init_atoms: int = Field(64, ge=1)
    # re-seeding (bundleflow.training.reseeding): every reseed_every steps (0: never) move up to
    # reseed_max elements nobody chooses to the bundles with the largest exact revenue gain on a
    # fresh sample of init_sample training bidders, priced exactly; each must sell to at least
    # reseed_min_buyers sampled bidders
    reseed_every: int = Field(0, ge=0)
    reseed_max: int = Field(256, ge=1)
    reseed_min_buyers: int = Field(3, ge=1)
    # after training: rounds of exact coordinate ascent on the kept menu's prices on the
    # training sample (allocations unchanged; kept only if training revenue does not drop)
    polish_rounds: int = Field(3, ge=0)
    # the kept menu: the last logged one, unless the one with the best exact validation revenue
    # beats it by more than keep_margin_se paired standard errors on the validation bidders
    # (0: always the validation-best, the rule before issue 39)
    keep_margin_se: float = Field(2.0, ge=0)
    # outside option: "none" (pure menu, the bidder may buy nothing) or "item_prices"
    # (mixed bundling: any bundle may also be bought at the item-pricing baseline's prices)
    outside: Literal["none", "item_prices"] = "none"
    # training objective: the softmax relaxation, or straight-through (hard forward, softmax
    # backward), optionally with Gumbel-perturbed utilities
    estimator: Literal["softmax", "straight_through", "gumbel"] = "softmax"
    # the relaxed choice: "flat" (one softmax over the elements and the outside options) or
    # "nested" (menu-or-outside by the menu's best element first; bundleflow.training.relaxation)
    choice: Literal["flat", "nested"] = "flat"
    seed: int = 0

    @model_validator(mode="after")
    def _spread(self):
        if self.init_spread * (self.n_support - 1) >= 1:
            raise ValueError(
                f"menu.init_spread * (menu.n_support - 1) must be < 1 (the bundle keeps the rest), "
                f"got {self.init_spread} * {self.n_support - 1}"
            )
        return self


class GemNetConfig(_Strict):
    """GemNet's own settings (menu.model=gemnet; menu.n_elements, steps, batch, tau_start,
    tau_end, log_every, time_budget_s and seed are shared with the single-bidder menus)."""

    hidden: list[int] = Field(default_factory=lambda: [64, 64])
    lr: float = Field(3e-3, gt=0)
    lr_final: float = Field(1e-4, gt=0)  # cosine decay of the learning rate to this
    # weight of the relaxed over-allocation in the loss, grown geometrically over training
    penalty_start: float = Field(1.0, gt=0)
    penalty_end: float = Field(100.0, gt=0)
    # also sell single items at learned reserves floored at the others' highest bids
    # (bundleflow.mechanisms.multi.gemnet); `reserve` is their start, a fraction of data.high
    item_prices: bool = False
    reserve: float = Field(0.5, gt=0, lt=1)
    # item bidders with item_prices: a learned entry fee f_i(b_-i) >= 0 on the item sales
    # (bundleflow.mechanisms.multi.gemnet); with start=item_auctions it starts at the fee and
    # reserve of the item auctions with an entry fee tuned on the training profiles
    entry_fee: bool = False
    # XOR bidders: serial menus, compatible by construction (bidder k's menu reads bidders
    # 0..k-1 and loses the elements meeting items they took; bundleflow.mechanisms.multi.gemnet)
    serial: bool = False
    # XOR bidders: every price floored at the best rival atom meeting the bundle, compatible by
    # construction (bundleflow.mechanisms.multi.gemnet)
    conflict_prices: bool = False
    # XOR bidders: the affine maximiser (VCG with a per-item seller's reserve tuned on the
    # training profiles, as the baseline) plus a learned entry fee f_i(b_-i) >= 0 per bidder,
    # compatible by construction (bundleflow.mechanisms.multi.gemnet)
    affine: bool = False
    # the post-training transform (bundleflow.training.compatibility): grid levels per bid
    # coordinate (0: no transform) and HiGHS's time limit per MILP round
    grid_levels: int = Field(8, ge=0)
    transform_time_limit_s: float = Field(600.0, gt=0)
    # "repair": change prices only where the grid over-allocates, never raising what a sale
    # earned; "optimise": also re-price every element for the most revenue on the grid (exact
    # for a finite type space that is the grid; may fit the grid of a continuous distribution)
    transform: Literal["repair", "optimise"] = "repair"
    # "item_auctions" (additive bidders with item_prices): start from the item auctions at the
    # reserve tuned on the training profiles, every learned element priced out, and keep the
    # validation-best menus among those that never over-allocate there
    start: Literal["random", "item_auctions"] = "random"
    # where the validation-best menus are kept (start=item_auctions, and menus compatible by
    # construction): later menus replace the start only if their paired validation gain over
    # it is above this many standard errors (0: any gain)
    keep_margin_se: float = Field(0.0, ge=0)
    # item bidders, after the transform (or without one), certify the value space box by box
    # (bundleflow.training.certificate) with at most this many boxes (0: no certificate)
    certify_boxes: int = Field(200_000, ge=0)
    # item bidders, after the transform: every allocation and price times 1 - withhold
    # (bundleflow.training.withholding; the choices are unchanged, revenue and every load shrink
    # by that factor); "auto": the smallest of 1e-4, 1e-3, 1e-2 that leaves no validation
    # profile over-allocated, else 0
    withhold: float | Literal["auto"] = 0.0

    @field_validator("withhold")
    @classmethod
    def _withhold(cls, v):
        if v != "auto" and not (0 <= v < 1):
            raise ValueError(f"gemnet.withhold must be in [0, 1) or auto, got {v}")
        return v

    @field_validator("hidden")
    @classmethod
    def _hidden(cls, v: list[int]) -> list[int]:
        if any(h < 1 for h in v):
            raise ValueError(f"gemnet.hidden widths must be >= 1, got {v}")
        return v


_GEMNET_MENU_FIELDS = {
    "n_elements",
    "steps",
    "batch",
    "tau_start",
    "tau_end",
    "log_every",
    "time_budget_s",
    "seed",
    "model",
}


class RunConfig(_Strict):
    data: DataConfig = DataConfig()
    flow: FlowConfig = FlowConfig()
    menu: MenuConfig = MenuConfig()
    gemnet: GemNetConfig = GemNetConfig()
    device: str = "auto"

    @model_validator(mode="after")
    def _fits_in_memory(self):
        """Refuse, before any work, a run whose largest tensors cannot fit: the menu's support
        bundles ``[J, D, m]`` and the relaxation's expected values, choice probabilities and their
        gradients ``[batch, J, D]`` (float32, about 4 copies); GemNet's menus of every bidder
        ``[batch, n, J, m + 1]`` (float64, about 4 copies); the bidders' atoms and values
        ``[N, A, m]`` of generated data."""
        J, D, B, m = self.menu.n_elements, self.menu.n_support, self.menu.batch, self.data.n_items
        n = self.data.n_train + self.data.n_val + self.data.n_test
        if self.menu.model == "gemnet":  # every bidder's menu of J elements per profile, float64 with gradients
            parts = {"GemNet menus [batch, bidders, J, m + 1] x 4": 32.0 * B * self.data.n_bidders * J * (m + 1)}
        else:
            parts = {
                "menu bundles [J, D, m]": 4.0 * J * D * m,
                "relaxation [batch, J, D] x 4": 16.0 * B * J * D,
            }
        if self.data.kind != "file":
            atoms = self.data.n_atoms if self.data.kind == "uniform_atoms" else 1
            parts["bidders [N, atoms, m]"] = float(n) * atoms * (m + 8)
        name, need = max(parts.items(), key=lambda kv: kv[1])
        have = available_memory_bytes()
        if have is not None and need > have:
            fields = f"data.n_bidders={self.data.n_bidders}" if self.menu.model == "gemnet" else f"menu.n_support={D}"
            raise ValueError(
                f"menu.n_elements={J}, {fields}, menu.batch={B}, data.n_items={m}: {name} needs about "
                f"{need / 1e9:.3g} GB, more than the {have / 1e9:.3g} GB of memory available"
            )
        return self

    @model_validator(mode="after")
    def _multi(self):
        if self.data.n_bidders > 1 and self.menu.model != "gemnet":
            raise ValueError(f"data.n_bidders={self.data.n_bidders} needs menu.model=gemnet (got {self.menu.model})")
        if self.menu.model == "gemnet":
            xor = self.data.kind in ("uniform_atoms", "file")  # XOR bidders: deterministic bundles
            default_levels = GemNetConfig.model_fields["grid_levels"].default
            flags = ("serial", "conflict_prices", "affine")
            for flag in flags:
                if getattr(self.gemnet, flag) and not xor:
                    raise ValueError(
                        f"gemnet.{flag} is built for XOR bidders (data.kind=uniform_atoms or file); "
                        "item bidders get the grid transform"
                    )
            chosen = [f"gemnet.{f}" for f in flags if getattr(self.gemnet, f)]
            if len(chosen) > 1:
                raise ValueError(f"{' and '.join(chosen)}: choose one")
            if self.gemnet.start == "item_auctions" and (self.data.kind != "additive" or not self.gemnet.item_prices):
                raise ValueError("gemnet.start=item_auctions needs additive bidders and gemnet.item_prices=true")
            keeps = self.gemnet.start == "item_auctions" or any(getattr(self.gemnet, f) for f in flags)
            if self.gemnet.keep_margin_se > 0 and not keeps:
                raise ValueError(
                    "gemnet.keep_margin_se guards the validation-best menus, kept with gemnet.start=item_auctions "
                    "or gemnet.serial, conflict_prices or affine"
                )
            if self.gemnet.entry_fee and (xor or not self.gemnet.item_prices):
                raise ValueError(
                    "gemnet.entry_fee is charged on item sales to item bidders: it needs gemnet.item_prices=true "
                    "and data.kind=additive or unit_demand (XOR bidders: gemnet.affine has entry fees)"
                )
            if xor and self.gemnet.withhold != 0:
                raise ValueError(
                    "gemnet.withhold scales lotteries: for item bidders (data.kind=additive or unit_demand)"
                )
            if self.gemnet.affine and self.gemnet.item_prices:
                raise ValueError("gemnet.affine sells the affine maximiser's bundles: remove gemnet.item_prices")
            if xor and self.gemnet.grid_levels not in (0, default_levels):  # (config.yaml records the default)
                raise ValueError(
                    "gemnet.grid_levels: the grid transform needs item bidders (data.kind=additive or "
                    "unit_demand); XOR bidders are trained with the penalty only (over-allocation is reported)"
                )
            unused = sorted(
                k
                for k in self.menu.model_fields_set - _GEMNET_MENU_FIELDS
                if getattr(self.menu, k) != type(self.menu).model_fields[k].default
            )
            if unused:
                raise ValueError(
                    f"menu.model=gemnet does not read {', '.join('menu.' + k for k in unused)} "
                    f"(its own settings are in the gemnet section)"
                )
            if self.flow != FlowConfig():
                raise ValueError("menu.model=gemnet has no Stage 1 flow: remove the flow settings")
            from bundleflow.training.compatibility import MAX_GRID_PROFILES

            L, nm = self.gemnet.grid_levels, self.data.n_bidders * self.data.n_items
            if not xor and L > 0 and L**nm > MAX_GRID_PROFILES:
                raise ValueError(
                    f"gemnet.grid_levels={L} gives {L}^{nm} grid profiles for {self.data.n_bidders} bidders x "
                    f"{self.data.n_items} items, more than {MAX_GRID_PROFILES}; use fewer levels or 0 (no transform)"
                )
            # the transform's MILP has a choice variable per (grid profile, bidder, option)
            choices = L**nm * self.data.n_bidders * (self.menu.n_elements + 1) if not xor and L > 0 else 0
            if choices > MAX_GRID_CHOICES:
                raise ValueError(
                    f"gemnet.grid_levels={L}: {L}^{nm} grid profiles x {self.data.n_bidders} bidders x "
                    f"{self.menu.n_elements + 1} options = {choices} MILP choices for the transform, more than "
                    f"{MAX_GRID_CHOICES}; use fewer levels or elements, or 0 (no transform)"
                )
        elif self.gemnet != GemNetConfig():
            raise ValueError("the gemnet section is read only with menu.model=gemnet")
        return self

    def record(self) -> dict:
        """The config as written to a run folder's ``config.yaml``: generator fields are left out
        for ``data.kind=file`` (the file decides items and values), the gemnet section unless
        menu.model=gemnet, the flow section if it is."""
        d = self.model_dump(mode="json")
        if self.menu.model == "gemnet":
            d.pop("flow")  # no Stage 1 flow
        else:
            d.pop("gemnet")
        if self.data.kind == "file":
            for k in _GENERATOR_FIELDS:
                d["data"].pop(k)
        return d

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", v):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {v!r}")
        return v


def _set(d: dict, dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    cur = d
    for k in keys[:-1]:
        cur = cur.setdefault(k, {})
        if not isinstance(cur, dict):
            raise InputError(f"override {dotted}: {k} is not a section")
    cur[keys[-1]] = load_yaml(raw, f"override {dotted}")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or the defaults) and apply ``key.sub=value`` overrides."""
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: no such config file")
        raw = read_yaml(p) or {}
        if not isinstance(raw, dict):
            raise InputError(f"{p}: a config must be a mapping")
    for ov in overrides or []:
        if "=" not in ov:
            raise InputError(f"override {ov!r} must look like key.sub=value")
        k, v = ov.split("=", 1)
        _set(raw, k.strip(), v)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e["loc"])
            got = (
                f" (got {e['input']!r})"
                if e["type"] not in ("value_error", "missing") and not isinstance(e["input"], dict)
                else ""
            )
            msg = e["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {msg}{got}" if where else f"{msg}{got}")
        raise InputError("invalid config: " + "; ".join(problems)) from exc
