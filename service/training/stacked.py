"""The trainer's stacked mode: many dropout MLPs trained at once, each weight with a leading
model dimension M.

A grid search trains many small candidates (the UCI protocol: 12 for each of 20 splits); one at a
time that is hundreds of runs of thousands of tiny steps, each too small to keep any processor
busy. Stacked, one step is a few batched matrix products (`torch.baddbmm`) for all of them.
Nothing couples the models: each has its own rows, dropout rate, weight decay and masks; the loss
is a sum of per-model losses, so each model's gradient is its own, and Adam updates element by
element.

It is `service.training.trainer.fit` vectorised: the same random streams, mini-batches and
progress bar (`random_streams`, `epoch_batches`, `progress_bar`), the MSE on standardised
targets, weight decay on weights only as Adam's coupled decay (`service.training.decay`), and the
one MC forward (`service.model.mc.mc_forward`, one pass per step) with masks drawn as
`DropoutMLP.mc_forward` draws them. Fixed epochs, no early stopping. With dropout off and one
model it reproduces `fit` (a test checks this).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional

from service.model import DropoutMLP, MLPConfig
from service.model.mc import AffineLayers, MaskFn, mc_forward
from service.training.decay import add_decay_gradients, stacked_decay
from service.training.trainer import epoch_batches, progress_bar, random_streams

__all__ = ["Stack", "fit_stacked"]


@dataclass(frozen=True)
class Stack(AffineLayers):
    """M one-output networks of equal shape as one grid of affine layers (see `AffineLayers`).

    `keep` is (M, layers): the keep probability in front of each Linear layer (inputs first);
    `scale` the inverted-dropout factor 1/keep that a kept unit is multiplied by.
    """

    keep: torch.Tensor
    scale: torch.Tensor
    configs: list[MLPConfig]

    @classmethod
    def from_networks(cls, networks: Sequence[DropoutMLP], device: torch.device) -> Stack:
        """Stack freshly initialised networks (inverted dropout, ReLU, same widths)."""
        configs = [network.config for network in networks]
        for config in configs:
            if config.style != "inverted" or config.activation != "relu":
                raise ValueError("stacked training supports inverted dropout with ReLU only")
        layers = range(len(networks[0].linears))
        weights = [
            torch.stack([n.linears[k].weight.detach().t() for n in networks]).to(device)
            for k in layers
        ]
        biases = [
            torch.stack([n.linears[k].bias.detach()[None] for n in networks]).to(device)
            for k in layers
        ]
        rates = [max(config.rates[k] for config in configs) for k in layers]
        keep = [[1.0 - rate for rate in config.rates] for config in configs]
        # 1/(1-p) in float64, then float32: the factor `dropout` multiplies a kept unit by.
        scale = [[1.0 / (1.0 - rate) for rate in config.rates] for config in configs]
        return cls(
            weights,
            biases,
            rates,
            networks[0].activation,
            keep=torch.tensor(keep, device=device),
            scale=torch.tensor(scale, device=device),
            configs=configs,
        )

    @property
    def models(self) -> int:
        return len(self.configs)

    def network(self, index: int) -> DropoutMLP:
        """Model `index` as a `DropoutMLP` on the CPU, eval mode."""
        network = DropoutMLP(self.configs[index])
        with torch.no_grad():
            for layer, weight, bias in zip(network.linears, self.weights, self.biases, strict=True):
                layer.weight.copy_(weight[index].t())
                layer.bias.copy_(bias[index, 0])
        return network.eval()

    def masks(self, generator: torch.Generator) -> MaskFn:
        """Each model's masks at its own rate, holding its scale (0 or 1/(1-p)), all drawn at
        once: (M, passes * rows, width)."""

        def draw(layer: int, shape: tuple[int, ...], rate: float) -> torch.Tensor:
            keep = self.keep[:, layer, None, None]
            kept = torch.rand(shape, generator=generator, device=keep.device) < keep
            return kept * self.scale[:, layer, None, None]

        return draw

    def mc_passes(
        self, x: torch.Tensor, passes: int, generator: torch.Generator, chunk_elements: int
    ) -> torch.Tensor:
        """`passes` stochastic passes of each model over its rows x (M, rows, in): (M, T, rows).

        Chunks of passes keep M * passes * rows * widest layer under `chunk_elements`.
        """
        models, rows, _ = x.shape
        widest = max(w.shape[2] for w in self.weights)
        step = max(1, chunk_elements // max(1, models * rows * widest))
        masks = self.masks(generator)
        with torch.no_grad():
            chunks = [
                mc_forward(self, x, min(step, passes - start), masks)[..., 0]
                for start in range(0, passes, step)
            ]
        return torch.cat(chunks, dim=1)


def fit_stacked(
    stack: Stack,
    x: torch.Tensor,
    y: torch.Tensor,
    decays: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    progress: bool = False,
    label: str = "train",
) -> torch.Tensor:
    """Train every model of `stack` in place on its own standardised rows.

    Args:
        stack: freshly initialised models.
        x: features (M, rows, in); y: targets (M, rows, 1). Model m trains on x[m], y[m].
        decays: lambda per model and layer, (M, layers) (see `service.training.decay`).
        epochs, batch_size, learning_rate: as in `service.training.trainer.fit`.
        seed: seeds the batch order (shared by all models) and the masks.
        progress: show a tqdm bar per epoch on stderr.
        label: the bar's title.

    Returns:
        The mean training loss of each model over its last epoch, shape (M,).

    Raises:
        FloatingPointError: a model's last-epoch loss is NaN or infinite.
    """
    device = x.device
    rows = x.shape[1]
    params = [*stack.weights, *stack.biases]
    for param in params:
        param.requires_grad_(True)
    # Fused Adam is one kernel per step on CUDA; the default (foreach) elsewhere.
    optimizer = torch.optim.Adam(
        params, lr=learning_rate, fused=True if device.type == "cuda" else None
    )
    coefficients = stacked_decay(decays.to(device))
    shuffle, generator = random_streams(seed, device)
    masks = stack.masks(generator)
    total = torch.zeros(stack.models, device=device)
    for _ in progress_bar(epochs, label, progress):
        total = torch.zeros(stack.models, device=device)
        for batch in epoch_batches(rows, batch_size, shuffle, device):
            optimizer.zero_grad(set_to_none=True)
            out = mc_forward(stack, x.index_select(1, batch), 1, masks)[:, 0]
            # fit's regression loss (`loss_of`), one per model.
            squared = functional.mse_loss(out, y.index_select(1, batch), reduction="none")
            losses = squared.mean(dim=(1, 2))
            losses.sum().backward()  # type: ignore[no-untyped-call]
            add_decay_gradients(stack.weights, coefficients)
            optimizer.step()
            total += losses.detach() * batch.numel()
    for param in params:
        param.requires_grad_(False)
    last = total / rows
    if not bool(torch.isfinite(last).all()):
        raise FloatingPointError(f"training diverged: last-epoch losses {last.tolist()}")
    return last
