"""Spatio-temporal graph neural network forecaster (PyTorch Geometric).

:class:`SpatioTemporalGNN` is the ``torch.nn.Module``; :class:`GNNForecaster` wraps it in the
:class:`~crimecast.forecast.models.base.Forecaster` contract (features, training loop, early stopping,
save/load). Inputs come from :func:`crimecast.forecast.features.lag_features` (the one feature
function) and :func:`crimecast.forecast.features.area_covariates`.

Training: every origin week ``t`` of the training window is a graph snapshot; the model
reads each tract's last ``lags`` weeks and summary features at ``t`` and predicts weeks
``t+1..t+H``. Several snapshots are stacked as one disjoint graph per step. Small graphs
train full-batch; graphs with more than ``full_batch_max_nodes`` areas train on
neighbour-sampled sub-graphs (:class:`UniformNeighbourSampler` driven by PyG's
``NodeLoader``: memory grows with ``batch_size`` and ``num_neighbors``, not the city).
Early stopping watches the NB/Poisson loss on the last ``validation_weeks`` origins;
``on_epoch(epoch, val_loss)`` (attribute) is called after every epoch, so Optuna can prune
by raising ``optuna.TrialPruned`` from it.

Short histories (:meth:`GNNForecaster._training_origins`): the validation window, base
window and training weeks are capped at what the history holds (recorded in
``adapted_``); with fewer than a year of training origins the week-of-year features are
dropped and the citywide drift of the corrections is removed.

Determinism: ``torch.manual_seed(seed)``, a seeded generator for shuffling and sampling,
``torch.use_deterministic_algorithms(True)`` during fit, ``torch.set_num_threads``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GCNConv, GraphConv

from crimecast.contracts import AreaGraph
from crimecast.data.panel import PanelArrays
from crimecast.forecast.features import (
    FeatureSpec,
    area_covariates,
    lag_features,
    trailing_weeks,
)
from crimecast.forecast.models.base import FeatureForecaster, ModelError
from crimecast.forecast.models.sampling import UniformNeighbourSampler

WEIGHTS_FILE = "gnn.pt"
#: Training origins needed before week-of-year features are used (one full cycle).
SEASON_WEEKS = 52
# Floor added to the long-run mean before taking its log as the offset: a tract with no
# crime in a year still gets a small, finite expected count.
BASE_FLOOR = 0.02


class WeightedGATConv(GATConv):
    """``GATConv`` (one head) called like the other convolutions, ``conv(x, edge_index,
    edge_weight)``: the edge weight is its one-dimensional edge attribute. A subclass, so
    its ``state_dict`` keys are GATConv's own."""

    def __init__(self, hidden: int) -> None:
        super().__init__(hidden, hidden, heads=1, edge_dim=1)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x, edge_index, edge_attr=edge_weight[:, None])


#: The graph convolutions a GNN can use, each built as ``CONVS[name](hidden)`` and called
#: as ``conv(x, edge_index, edge_weight)``: GCN (symmetric degree normalisation), GraphConv
#: with mean aggregation (separate self and neighbour weights), GAT (learned attention).
CONVS: dict[str, Callable[[int], nn.Module]] = {
    "gcn": lambda hidden: GCNConv(hidden, hidden),
    "graph": lambda hidden: GraphConv(hidden, hidden, aggr="mean"),
    "gat": WeightedGATConv,
}
CONV_TYPES = tuple(CONVS)


class SpatioTemporalGNN(nn.Module):
    r"""GRU temporal encoder + residual graph convolutions + per-horizon count heads.

    For node ``i`` (a tract at one origin week)::

        h_i   = GRU(s_i)[last]                        s_i: [L, C_in] recent weeks, log1p
        z_i   = ReLU(h_i + W_s x_i)                   x_i: [S] standardised static features
        z     = z + ReLU(Conv_k(z, A))   k = 1..K     Conv: GCNConv | GraphConv | GATConv
        z     = z + ReLU(W_j z)          j = 1..head_layers-1   (residual MLP head)
        log mu_i[h, c] = (W_o z_i)[h, c] + log(b_i[c] + 0.02)

    where ``b_i[c]`` is the tract's long-run mean count (``base_window`` weeks, default
    156: the sampling error of a w-week mean adds about 1/w to the Poisson deviance, 0.02
    for a 52-week mean); the model learns a multiplicative correction to it; ``A`` is the
    weighted adjacency. Counts follow
    ``NB(mu, alpha_c)`` (variance ``mu + alpha_c mu^2``, ``alpha_c = exp(log_alpha[c])``
    learned) or ``Poisson(mu)``.

    Args:
        seq_features (int): channels per week of ``seq`` (``C_in``: the categories, twice
            that with the count-over-mean channel, see ``GNNForecaster(seq_ratio)``).
        static_features (int): width ``S`` of ``static``.
        num_categories (int): ``C``, the crime categories forecast.
        num_horizons (int): ``H``, the horizons forecast (one head output each).
        hidden (int, optional): width of every hidden layer. (default: ``32``)
        conv_layers (int, optional): ``K``, residual graph-convolution layers; 0 turns
            the model into a per-area GRU. (default: ``2``)
        conv (str, optional): which convolution, a key of :data:`CONVS`. (default: ``"gcn"``)
        dropout (float, optional): dropout on each convolution's update. (default: ``0.1``)
        likelihood (str, optional): ``"negbin"`` or ``"poisson"`` (the training loss and
            the predictive distribution). (default: ``"negbin"``)
        head_layers (int, optional): layers of the output head; ``head_layers - 1``
            residual hidden layers before the linear output. (default: ``1``)

    Shapes:
        - **input:** ``seq: [N, L, C_in]``, ``static: [N, S]``, ``log_base: [N, C]``,
          ``edge_index: [2, E]``, ``edge_weight: [E]``
        - **output:** ``log_mean: [N, H, C]``
    """

    def __init__(self, seq_features: int, static_features: int, num_categories: int,
                 num_horizons: int, hidden: int = 32, conv_layers: int = 2,
                 conv: str = "gcn", dropout: float = 0.1, likelihood: str = "negbin",
                 head_layers: int = 1) -> None:
        super().__init__()
        if conv not in CONV_TYPES:
            raise ModelError(f"gnn.conv must be one of {CONV_TYPES}, got {conv!r}")
        self.num_categories, self.num_horizons, self.conv = num_categories, num_horizons, conv
        self.gru = nn.GRU(seq_features, hidden, batch_first=True)
        self.static = nn.Linear(static_features, hidden)
        self.convs = nn.ModuleList([CONVS[conv](hidden) for _ in range(conv_layers)])
        self.dropout = nn.Dropout(dropout)
        self.head_hidden = nn.ModuleList([nn.Linear(hidden, hidden)
                                          for _ in range(max(head_layers - 1, 0))])
        self.head = nn.Linear(hidden, num_horizons * num_categories)
        # Zero head: the untrained model forecasts the base_window-week mean, a sane start.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.likelihood = likelihood
        self.log_alpha = nn.Parameter(torch.full((num_categories,), math.log(0.1)))

    def forward(self, seq: Tensor, static: Tensor, log_base: Tensor, edge_index: Tensor,
                edge_weight: Tensor) -> Tensor:
        _, last = self.gru(seq)  # last: [1, N, hidden]
        z = torch.relu(last[0] + self.static(static))
        for conv in self.convs:
            z = z + self.dropout(torch.relu(conv(z, edge_index, edge_weight)))
        for layer in self.head_hidden:
            z = z + torch.relu(layer(z))
        out = self.head(z).view(-1, self.num_horizons, self.num_categories)
        return out + log_base[:, None, :]

    def loss(self, log_mean: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Mean negative log-likelihood over cells where ``mask`` is true (``[N, H, C]``)."""
        log_mean = log_mean.clamp(-12.0, 12.0)
        mu = log_mean.exp()
        if self.likelihood == "poisson":
            nll = mu - target * log_mean + torch.lgamma(target + 1)
        else:
            r = torch.exp(-self.log_alpha)[None, None, :].expand_as(mu)
            nll = -(torch.lgamma(target + r) - torch.lgamma(r) - torch.lgamma(target + 1)
                    + r * (torch.log(r) - torch.log(r + mu))
                    + target * (log_mean - torch.log(r + mu)))
        weight = mask.to(nll.dtype)
        return (nll * weight).sum() / weight.sum().clamp_min(1.0)


@contextmanager
def _deterministic_torch(threads: int) -> Iterator[None]:
    """Deterministic kernels and a fixed thread count inside the block (restored after)."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.set_num_threads(previous[1])


class GNNForecaster(FeatureForecaster):
    r"""The :class:`SpatioTemporalGNN` in the forecaster contract: features, training loop
    with early stopping, save/load (see the module docstring for how it trains).

    Args:
        lags (int, optional): weeks of recent counts the GRU reads per area
            (``L``). (default: ``8``)
        hidden (int, optional): width of the GRU state and of every layer. (default: ``32``)
        conv_layers (int, optional): residual graph-convolution layers. (default: ``2``)
        conv (str, optional): ``"gcn"``, ``"graph"`` (GraphConv, mean aggregation) or
            ``"gat"``; ``graph`` won on the synthetic city (docs/models.md). (default:
            ``"graph"``)
        dropout (float, optional): dropout on each convolution's update. (default: ``0.1``)
        likelihood (str, optional): ``"negbin"`` (dispersion learned per category) or
            ``"poisson"``. (default: ``"negbin"``)
        head_layers (int, optional): layers of the output head. (default: ``2``)
        seq_ratio (bool, optional): add a second channel per category to the GRU input:
            each week's count divided by the area's ``base_window``-week mean (+ 0.1).
            Near-repeat bursts are additive on the count scale, which ``log1p`` alone
            makes hard to read; the ratio shows "three times this area's usual" directly.
            (default: ``True``)
        base_window (int, optional): weeks of the long-run mean ``b`` that the model
            corrects multiplicatively; also a rolling-mean feature. (default: ``156``)
        horizons (list[int], optional): weeks ahead with an output head; set from
            ``configs/evaluation.yaml`` by ``ModelsSettings.params_for``.
            (default: ``(1, 2, 3, 4)``)
        learning_rate (float, optional): Adam learning rate. (default: ``0.01``)
        weight_decay (float, optional): Adam L2 penalty. (default: ``1e-4``)
        epochs (int, optional): most passes over the training snapshots. (default: ``60``)
        patience (int, optional): stop after this many epochs without a better
            validation loss; the best epoch's weights are kept. (default: ``8``)
        train_weeks (int, optional): most recent origin weeks used as training
            snapshots. (default: ``156``)
        validation_weeks (int, optional): origins at the end of the training data whose
            loss drives early stopping (inside the data given to ``fit``; not the
            evaluation's validation window). (default: ``8``)
        snapshots_per_batch (int, optional): origin weeks stacked as one disjoint graph
            per optimiser step. (default: ``8``)
        full_batch_max_nodes (int, optional): above this many areas, train on
            neighbour-sampled sub-graphs instead of the whole graph. (default: ``20000``)
        batch_size (int, optional): seed areas per sampled sub-graph. (default: ``512``)
        num_neighbors (list[int], optional): neighbours sampled per area at each hop
            (one entry per hop; ``-1`` keeps all). (default: ``(10, 10)``)
        num_threads (int, optional): torch CPU threads during fit and predict.
            (default: ``1``)
        seed (int, optional): seed of weights, shuffling and sampling. (default: ``0``)
        mask_outages (bool, optional): never train on or score outage weeks, and fill
            them from the past in the features. (default: ``True``)
    """

    name: ClassVar[str] = "gnn"
    complexity: ClassVar[int] = 4

    def __init__(self, *, lags: int = 8, hidden: int = 32, conv_layers: int = 2,
                 conv: str = "graph", dropout: float = 0.1, likelihood: str = "negbin",
                 head_layers: int = 2, seq_ratio: bool = True, base_window: int = 156,
                 horizons: tuple[int, ...] | list[int] = (1, 2, 3, 4),
                 learning_rate: float = 0.01, weight_decay: float = 1e-4,
                 epochs: int = 60, patience: int = 8, train_weeks: int = 156,
                 validation_weeks: int = 8, snapshots_per_batch: int = 8,
                 full_batch_max_nodes: int = 20000, batch_size: int = 512,
                 num_neighbors: tuple[int, ...] | list[int] = (10, 10),
                 num_threads: int = 1, seed: int = 0, mask_outages: bool = True) -> None:
        super().__init__(mask_outages=mask_outages)
        if conv not in CONV_TYPES:
            raise ModelError(f"gnn.conv must be one of {CONV_TYPES}, got {conv!r}")
        if likelihood not in ("negbin", "poisson"):
            raise ModelError(f"gnn.likelihood must be 'negbin' or 'poisson', got {likelihood!r}")
        self.lags, self.hidden, self.conv_layers, self.conv = lags, hidden, conv_layers, conv
        self.dropout, self.likelihood = dropout, likelihood
        self.head_layers, self.seq_ratio = head_layers, seq_ratio
        self.base_window = base_window
        self.horizons = list(horizons)
        self.learning_rate, self.weight_decay = learning_rate, weight_decay
        self.epochs, self.patience = epochs, patience
        self.train_weeks, self.validation_weeks = train_weeks, validation_weeks
        self.snapshots_per_batch = snapshots_per_batch
        self.full_batch_max_nodes, self.batch_size = full_batch_max_nodes, batch_size
        self.num_neighbors = list(num_neighbors)
        self.num_threads, self.seed = num_threads, seed
        #: Optional ``on_epoch(epoch, val_loss)`` callback (not a hyperparameter).
        self.on_epoch: Callable[[int, float], None] | None = None
        self.module_: SpatioTemporalGNN | None = None
        self.static_mean_: np.ndarray | None = None
        self.static_std_: np.ndarray | None = None
        self.history_: list[dict[str, float]] = []
        self.drift_: np.ndarray | None = None  # [H, C] removed when trained on < a year

    # ------------------------------------------------------------------------ inputs
    def _effective(self, key: str) -> int:
        entry = self.adapted_.get(key)
        return int(entry["effective"] if entry else getattr(self, key, 1))

    @property
    def spec(self) -> FeatureSpec:
        """The features, with the base window and week-of-year features the fit adapted
        to its history."""
        return self.spec_for(self._effective("base_window"))

    def _training_origins(self, num_weeks: int) -> tuple[np.ndarray, np.ndarray]:
        """``(train_origins, validation_origins)`` for a history of ``num_weeks``, with the
        windows capped at what the history holds (recorded in ``adapted_``): the
        validation window at a fifth of the history, the base window at the weeks the
        last training origin sees, the training weeks at the origins that remain. With
        fewer than a year of training origins the week-of-year features are dropped
        (``seasonal_features``) and the citywide drift removed (:meth:`_training_drift`).
        Raises ModelError when fewer than 4 training origins would remain."""
        horizon = max(self.horizons)
        start = min(self.spec_for(self.base_window).min_history, 4) - 1

        def plan(weeks: int) -> tuple[int, int]:
            validation = min(self.validation_weeks, max(2, weeks // 5))
            return validation, weeks - 1 - validation - horizon

        validation, last_train = plan(num_weeks)
        if last_train - start + 1 < 4:
            minimum = next(w for w in range(num_weeks + 1, num_weeks + 200)
                           if plan(w)[1] - start + 1 >= 4)
            raise self._too_short(num_weeks, minimum, "validation_weeks")
        self._adapt("validation_weeks", self.validation_weeks, validation)
        self._adapt("base_window", self.base_window, last_train + 1)
        train = self._adapt("train_weeks", self.train_weeks, last_train - start + 1)
        last_val = num_weeks - 2  # the last origin with at least one target
        val_origins = np.arange(last_val - validation + 1, last_val + 1)
        # Training targets stay before the first validation target.
        first_train = max(last_train - train + 1, start)
        if last_train - first_train + 1 < SEASON_WEEKS:
            # Fewer origins than a year: week-of-year features would be learned from part
            # of the cycle and extrapolated to the rest (forecasts several-fold off).
            self.adapted_["seasonal_features"] = {"configured": True, "effective": False}
        return np.arange(first_train, last_train + 1), val_origins

    def spec_for(self, base_window: int) -> FeatureSpec:
        """The features with a given base window (rolling windows longer than it are
        capped at it)."""
        return FeatureSpec(lags=self._effective("lags"),
                           rolling_windows=tuple(sorted({min(w, base_window)
                                                         for w in (4, 13, 52)}
                                                        | {base_window})),
                           seasonal=bool(self._effective("seasonal_features")),
                           spatial_lag=True)

    def _inputs(self, data: PanelArrays, graph: AreaGraph
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Model inputs for every (area, origin week).

        Returns ``seq [A, W, L, C']`` (log1p counts, oldest first, plus counts over the
        long-run mean when ``seq_ratio``: ``C' = 2C``), ``static [A, W, S]``
        (log1p of rolling/spatial means, week-of-year, area covariates; unscaled) and
        ``log_base [A, W, C]`` (log of the ``base_window``-week mean + floor).
        """
        cats = data.categories
        features, names = lag_features(data.counts, data.weeks, self.spec, graph=graph,
                                       categories=cats, outage=data.outage)
        index = {n: i for i, n in enumerate(names)}
        lags = self._effective("lags")
        lag_idx = np.array([[index[f"lag{k}_{c}"] for c in cats]
                            for k in range(lags, 0, -1)])
        base = features[:, :, [index[f"mean{self._effective('base_window')}_{c}"]
                               for c in cats]]
        num_areas, num_weeks = features.shape[:2]
        # Filled block by block into preallocated float32 arrays: on a 100k-area city each
        # temporary copy of these is a gigabyte.
        channels = 2 if self.seq_ratio else 1
        seq = np.empty((num_areas, num_weeks, lags, channels * len(cats)), np.float32)
        seq[..., : len(cats)] = features[:, :, lag_idx]
        if self.seq_ratio:
            # Counts relative to the tract's usual level: near-repeat bursts are additive
            # on the count scale, which log1p alone makes hard to read.
            seq[..., len(cats):] = seq[..., : len(cats)]
            seq[..., len(cats):] /= base[:, :, None, :] + 0.1
        np.log1p(seq[..., : len(cats)], out=seq[..., : len(cats)])
        count_static = [i for n, i in index.items() if not n.startswith(("lag", "woy_"))]
        woy = [index[n] for n in ("woy_sin", "woy_cos") if n in index]
        covariates = area_covariates(graph.areas)  # [A, 8]
        width = len(count_static) + len(woy)
        static = np.empty((num_areas, num_weeks, width + covariates.shape[1]), np.float32)
        static[..., : len(count_static)] = features[:, :, count_static]
        np.log1p(static[..., : len(count_static)], out=static[..., : len(count_static)])
        static[..., len(count_static): width] = features[:, :, woy]
        static[..., width:] = covariates[:, None, :]
        del features
        return seq, static, np.log(base + BASE_FLOOR).astype(np.float32)

    @staticmethod
    def _edges(graph: AreaGraph) -> tuple[Tensor, Tensor]:
        weight = np.asarray(graph.edge_weight, dtype=np.float32)
        # Scale to mean 1 so GraphConv/GAT see weights of the same size in every city.
        weight = weight / weight.mean() if weight.size and weight.mean() > 0 else weight
        return (torch.as_tensor(np.asarray(graph.edge_index), dtype=torch.long),
                torch.as_tensor(weight))

    def _targets(self, data: PanelArrays, origins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``y [A, O, H, C]`` and its observability mask (inside the panel, not outage)."""
        num_areas, num_weeks, num_cats = data.counts.shape
        y = np.zeros((num_areas, len(origins), len(self.horizons), num_cats), np.float32)
        mask = np.zeros(y.shape, dtype=bool)
        for k, h in enumerate(self.horizons):
            target = origins + h
            ok = target < num_weeks
            ok[ok] &= ~data.outage[target[ok]]
            y[:, ok, k, :] = data.counts[:, target[ok], :]
            mask[:, ok, k, :] = True
        return y, mask

    # ----------------------------------------------------------------------- training
    def _fit(self, data: PanelArrays, graph: AreaGraph) -> None:
        num_areas, num_weeks, num_cats = data.counts.shape
        train_origins, val_origins = self._training_origins(num_weeks)
        seq, static, log_base = self._inputs(data, graph)
        flat_static = static[:, train_origins].reshape(-1, static.shape[-1])
        self.static_mean_ = flat_static.mean(axis=0)
        self.static_std_ = np.maximum(flat_static.std(axis=0), 1e-6)
        static -= self.static_mean_
        static /= self.static_std_
        y_train, m_train = self._targets(data, train_origins)
        y_val, m_val = self._targets(data, val_origins)
        edge_index, edge_weight = self._edges(graph)

        with _deterministic_torch(self.num_threads):
            torch.manual_seed(self.seed)
            generator = torch.Generator().manual_seed(self.seed)
            module = SpatioTemporalGNN(seq.shape[-1], static.shape[-1], num_cats,
                                       len(self.horizons), self.hidden, self.conv_layers,
                                       self.conv, self.dropout, self.likelihood,
                                       self.head_layers)
            optimiser = torch.optim.Adam(module.parameters(), lr=self.learning_rate,
                                         weight_decay=self.weight_decay)
            tensors = {"seq": torch.from_numpy(seq), "static": torch.from_numpy(static),
                       "log_base": torch.from_numpy(log_base)}
            sampled = num_areas > self.full_batch_max_nodes
            sampler = (UniformNeighbourSampler(edge_index, num_areas, self.num_neighbors,
                                               generator) if sampled else None)
            best_loss, best_state, stale = math.inf, copy.deepcopy(module.state_dict()), 0
            self.history_ = []
            for epoch in range(self.epochs):
                module.train()
                train_loss = self._train_epoch(module, optimiser, tensors, train_origins,
                                               torch.from_numpy(y_train),
                                               torch.from_numpy(m_train), edge_index,
                                               edge_weight, generator, sampler)
                val_loss = self._evaluate(module, tensors, val_origins, torch.from_numpy(y_val),
                                          torch.from_numpy(m_val), edge_index, edge_weight)
                self.history_.append({"epoch": epoch, "train_loss": train_loss,
                                      "val_loss": val_loss})
                if self.on_epoch is not None:
                    self.on_epoch(epoch, val_loss)
                if val_loss < best_loss - 1e-5:
                    best_loss, best_state, stale = val_loss, copy.deepcopy(module.state_dict()), 0
                else:
                    stale += 1
                    if stale >= self.patience:
                        break
            module.load_state_dict(best_state)
        module.eval()
        self.module_ = module
        self.dispersion_ = self._learned_dispersion()
        self.drift_ = np.zeros((len(self.horizons), num_cats))
        if "seasonal_features" in self.adapted_:
            self.drift_ = self._training_drift(tensors, train_origins, edge_index, edge_weight)
            self.adapted_["drift_removed"] = {"configured": False, "effective": True}

    def _training_drift(self, tensors: dict[str, Tensor], origins: np.ndarray,
                        edge_index: Tensor, edge_weight: Tensor) -> np.ndarray:
        """``[H, C]``: the mean log-correction to the base window over the training
        origins. With less than a year of origins, that citywide drift is the part of the
        seasonal cycle the training weeks happened to cover (rising in spring, falling in
        autumn), not something that continues; it is subtracted at predict time, keeping
        the area-to-area and near-repeat corrections."""
        assert self.module_ is not None
        total = np.zeros((len(self.horizons), self.module_.num_categories))
        with torch.no_grad():
            for origin in origins:
                seq, static, base = self._stack(tensors, None, torch.tensor([origin]))
                log_mean = self.module_(seq, static, base, edge_index, edge_weight)
                total += (log_mean - base[:, None, :]).mean(dim=0).double().numpy()
        return total / max(len(origins), 1)

    def _learned_dispersion(self) -> np.ndarray:
        assert self.module_ is not None
        if self.likelihood == "poisson":
            return np.zeros(self.module_.num_categories)
        return self.module_.log_alpha.detach().exp().double().numpy()

    @staticmethod
    def _stack(tensors: dict[str, Tensor], nodes: Tensor | None, origins: Tensor
               ) -> tuple[Tensor, Tensor, Tensor]:
        """Inputs of ``nodes`` (all when None) at each of ``origins``, snapshot-major."""
        pick = (lambda t: t[:, origins]) if nodes is None else (lambda t: t[nodes][:, origins])
        seq, static, base = (pick(tensors[k]) for k in ("seq", "static", "log_base"))
        # [n, G, ...] -> [G * n, ...] (snapshot-major, matching the edge offsets below)
        return (seq.transpose(0, 1).reshape(-1, *seq.shape[2:]),
                static.transpose(0, 1).reshape(-1, static.shape[-1]),
                base.transpose(0, 1).reshape(-1, base.shape[-1]))

    @staticmethod
    def _replicate(edge_index: Tensor, edge_weight: Tensor, num_nodes: int, copies: int
                   ) -> tuple[Tensor, Tensor]:
        """``copies`` disjoint copies of a graph (one per stacked snapshot)."""
        offsets = (torch.arange(copies) * num_nodes).repeat_interleave(edge_index.shape[1])
        return edge_index.repeat(1, copies) + offsets, edge_weight.repeat(copies)

    def _train_epoch(self, module: SpatioTemporalGNN, optimiser: torch.optim.Optimizer,
                     tensors: dict[str, Tensor], origins: np.ndarray, y: Tensor, mask: Tensor,
                     edge_index: Tensor, edge_weight: Tensor, generator: torch.Generator,
                     sampler: UniformNeighbourSampler | None) -> float:
        """One pass; returns the mean training loss. ``y, mask``: ``[A, O, H, C]``."""
        group = self.snapshots_per_batch
        losses = []
        if sampler is None:
            order = torch.randperm(len(origins), generator=generator)
            num_nodes = y.shape[0]
            for start in range(0, len(order), group):
                pos = order[start:start + group]
                seq, static, base = self._stack(tensors, None, torch.as_tensor(origins)[pos])
                ei, ew = self._replicate(edge_index, edge_weight, num_nodes, len(pos))
                target = y[:, pos].transpose(0, 1).reshape(-1, *y.shape[2:])
                valid = mask[:, pos].transpose(0, 1).reshape(-1, *mask.shape[2:])
                losses.append(self._step(module, optimiser, seq, static, base, ei, ew,
                                         target, valid))
            return float(np.mean(losses))
        from torch_geometric.data import Data
        from torch_geometric.loader import NodeLoader

        graph_data = Data(edge_index=edge_index, edge_weight=edge_weight, num_nodes=y.shape[0])
        loader = NodeLoader(graph_data, node_sampler=sampler, batch_size=self.batch_size,
                            shuffle=True, generator=generator)
        for batch in loader:
            pos = torch.randint(len(origins), (group,), generator=generator)
            nodes, seeds = batch.n_id, batch.batch_size
            seq, static, base = self._stack(tensors, nodes, torch.as_tensor(origins)[pos])
            ei, ew = self._replicate(batch.edge_index, batch.edge_weight, nodes.numel(), group)
            # Loss on the seed nodes only; the sampled neighbours just feed messages.
            target = torch.zeros(group * nodes.numel(), *y.shape[2:])
            valid = torch.zeros(target.shape, dtype=torch.bool)
            rows = (torch.arange(group)[:, None] * nodes.numel()
                    + torch.arange(seeds)[None, :]).reshape(-1)
            target[rows] = y[nodes[:seeds]][:, pos].transpose(0, 1).reshape(-1, *y.shape[2:])
            valid[rows] = mask[nodes[:seeds]][:, pos].transpose(0, 1).reshape(
                -1, *mask.shape[2:])
            losses.append(self._step(module, optimiser, seq, static, base, ei, ew, target,
                                     valid))
        return float(np.mean(losses))

    @staticmethod
    def _step(module: SpatioTemporalGNN, optimiser: torch.optim.Optimizer, seq: Tensor,
              static: Tensor, base: Tensor, ei: Tensor, ew: Tensor, target: Tensor,
              valid: Tensor) -> float:
        optimiser.zero_grad()
        loss = module.loss(module(seq, static, base, ei, ew), target, valid)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 5.0)
        optimiser.step()
        return float(loss.detach())

    def _evaluate(self, module: SpatioTemporalGNN, tensors: dict[str, Tensor],
                  origins: np.ndarray, y: Tensor, mask: Tensor, edge_index: Tensor,
                  edge_weight: Tensor) -> float:
        """Full-graph validation loss (inference needs no activations kept, so it fits)."""
        if len(origins) == 0:
            return float("nan")
        module.eval()
        losses, weights = [], []
        with torch.no_grad():
            for k, origin in enumerate(origins):
                seq, static, base = self._stack(tensors, None, torch.tensor([origin]))
                log_mean = module(seq, static, base, edge_index, edge_weight)
                losses.append(float(module.loss(log_mean, y[:, k], mask[:, k])))
                weights.append(float(mask[:, k].sum()))
        total = sum(weights)
        return float(np.dot(losses, weights) / total) if total else float("nan")

    # ---------------------------------------------------------------------- predicting
    def _predict_mean(self, data: PanelArrays, graph: AreaGraph,
                      horizons: tuple[int, ...]) -> np.ndarray:
        if self.module_ is None:
            raise ModelError("gnn: not fitted")
        data = trailing_weeks(data, self.spec)  # inputs of the last week only
        seq, static, log_base = self._inputs(data, graph)
        last = data.counts.shape[1] - 1
        static_now = (static[:, last] - self.static_mean_) / self.static_std_
        edge_index, edge_weight = self._edges(graph)
        with _deterministic_torch(self.num_threads), torch.no_grad():
            self.module_.eval()
            log_mean = self.module_(torch.from_numpy(seq[:, last]),
                                    torch.from_numpy(static_now.astype(np.float32)),
                                    torch.from_numpy(log_base[:, last]), edge_index, edge_weight)
        drift = torch.as_tensor(self.drift_, dtype=log_mean.dtype)[None]
        mean = (log_mean - drift).clamp(-12.0, 12.0).exp().double().numpy()  # [A, H_model, C]
        pick = [self.horizons.index(h) for h in horizons]
        return mean[:, pick, :]

    # ---------------------------------------------------------------------- persistence
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        assert self.module_ is not None
        state = {"seq_features": int(self.module_.gru.input_size),
                 "static_features": int(self.module_.static.in_features),
                 "num_categories": int(self.module_.num_categories),
                 "history": self.history_}
        return state, {"static_mean": self.static_mean_, "static_std": self.static_std_,
                       "drift": self.drift_}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.static_mean_ = arrays["static_mean"].astype(np.float32)
        self.static_std_ = arrays["static_std"].astype(np.float32)
        self.drift_ = arrays.get("drift", np.zeros((len(self.horizons), state["num_categories"])))
        self.history_ = list(state.get("history", []))
        self.module_ = SpatioTemporalGNN(state["seq_features"], state["static_features"],
                                         state["num_categories"], len(self.horizons),
                                         self.hidden, self.conv_layers, self.conv,
                                         self.dropout, self.likelihood, self.head_layers)

    def _save_files(self, directory: Path) -> None:
        from crimecast.io import atomic_path

        assert self.module_ is not None
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            torch.save(self.module_.state_dict(), tmp)

    def _load_files(self, directory: Path) -> None:
        path = directory / WEIGHTS_FILE
        if not path.exists():
            raise ModelError(f"{path}: GNN weights missing")
        assert self.module_ is not None
        self.module_.load_state_dict(torch.load(path, weights_only=True))
        self.module_.eval()
