r"""The Warcraft cost network: the ResNet18 stem of Vlastelica et al. (ICLR 2020), written in plain torch.

``x`` (maps ``[B, 3, 8K, 8K]``) → conv1 (7×7, stride 2, 64 channels, no bias) → batch norm → ReLU →
max-pool (3×3, stride 2) → layer1 (two BasicBlocks of 64 channels) → adaptive max-pool to ``K × K`` →
mean over the channels → costs ``[B, K, K]``. No weights are downloaded: the layers are initialised as
``torchvision.models.resnet18()`` initialises them (Kaiming-normal convolutions, BN weight 1 and bias 0).

Costs are non-negative by construction: layer1 ends in a ReLU, so the channel mean ``m`` is already
``>= 0``. ``cost_activation`` chooses the map applied to ``m``:

- ``"abs"`` (default): ``c = |m|``, the original code's head (tf-imle
  ``WARCRAFT/maprop/warcraft_shortest_path/maprop.py``, ``DijkstraMAP.forward_pass``:
  ``output = torch.abs(output)``, "make grid weights positive"). After the ReLU it is a no-op in value;
  costs are exactly 0 on cells whose channels are all zero, where the ReLU blocks the gradient.
- ``"identity"``: ``c = m`` (the same values as ``"abs"``; kept for runs made before ``"abs"`` existed).
- ``"softplus"`` (our option, not the paper's): ``c = softplus(m) = log(1 + e^m) >= log 2 ≈ 0.69``.
  Strictly positive, and every cell keeps a non-zero gradient (the derivative is ``sigmoid(m) >= 1/2``
  for ``m >= 0``). The floor is close to the cheapest true cost 0.8.

Shapes: the input side must be at least 4·K pixels (two stride-2 stages before the pool); Warcraft maps
are 8·K (a 12 × 12 grid is a 96 × 96 image), pooled from 2K × 2K to K × K.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["COST_ACTIVATIONS", "BasicBlock", "WarcraftNet"]

COST_ACTIVATIONS = ("abs", "softplus", "identity")


class BasicBlock(nn.Module):
    """ResNet's basic block without downsampling: ``relu(x + bn(conv(relu(bn(conv(x))))))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + x)


class WarcraftNet(nn.Module):
    """Map images ``[B, C, H, W]`` to non-negative cell costs ``[B, K, K]`` (see the module docstring).

    Args:
        grid_size: K, the side of the output grid.
        in_channels: image channels (3 for RGB).
        width: channels of the stem and of layer1 (64 in ResNet18 and the paper).
        cost_activation: ``"abs"`` (default, the original's), ``"softplus"`` or ``"identity"``.

    Example:
        >>> import torch
        >>> net = WarcraftNet(12)
        >>> costs = net(torch.rand(2, 3, 96, 96))
        >>> costs.shape, bool((costs >= 0).all())
        (torch.Size([2, 12, 12]), True)
    """

    def __init__(self, grid_size: int, in_channels: int = 3, width: int = 64,
                 cost_activation: str = "abs") -> None:
        super().__init__()
        if isinstance(grid_size, bool) or not isinstance(grid_size, int) or grid_size < 1:
            raise ValueError(f"grid_size must be an integer >= 1; got {grid_size!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an integer >= 1; got {width!r}")
        if cost_activation not in COST_ACTIVATIONS:
            raise ValueError(f"cost_activation must be one of {list(COST_ACTIVATIONS)}; got {cost_activation!r}")
        self.grid_size = grid_size
        self.cost_activation = cost_activation
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(width), BasicBlock(width))
        self.pool = nn.AdaptiveMaxPool2d((grid_size, grid_size))
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's ResNet initialisation (uses torch's default generator: see train.build_model)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"x must be a batch of images [B, C, H, W]; got shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < 4 * self.grid_size:
            raise ValueError(f"images must be at least 4 * grid_size = {4 * self.grid_size} pixels on each side; "
                             f"got shape {tuple(x.shape)}")
        out = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        out = self.pool(self.layer1(out)).mean(dim=1)
        if self.cost_activation == "softplus":
            return nn.functional.softplus(out)
        return out.abs() if self.cost_activation == "abs" else out

    def extra_repr(self) -> str:
        return f"grid_size={self.grid_size}, cost_activation={self.cost_activation!r}"
