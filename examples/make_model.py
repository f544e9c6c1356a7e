"""Write the quickstart's model and input: a small CNN as TorchScript, and one 1x3x32x32 f32 image.

The weights are random with a fixed seed (nothing is downloaded); the script prints what torch itself answers for
the input, so the guest's output can be compared with it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(32, classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image).flatten(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "models")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = TinyCNN().eval()
    torch.jit.save(torch.jit.script(model), out / "tiny_cnn.pt")
    image = torch.rand(1, 3, 32, 32)
    (out / "input.bin").write_bytes(image.numpy().tobytes())
    with torch.inference_mode():
        scores = model(image)[0]
    print(f"wrote {out / 'tiny_cnn.pt'} and {out / 'input.bin'}")
    print("torch says, scores x1000:", " ".join(str(int(s * 1000)) for s in scores.tolist()))
    print("torch says, top class:", int(scores.argmax()))


if __name__ == "__main__":
    main()
