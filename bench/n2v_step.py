"""Cost of training a Noise2Void network here: seconds per training step on the CPU.

    pip install torch==2.13.0      # the CPU wheel this machine kind provides
    python bench/n2v_step.py

Why Noise2Void is not among the peers of bench/compare.py (see bench/RESULTS.md): careamics, the
maintained implementation, cannot be installed beside the CPU build of torch available here, and
training costs the figures this script prints. The network has the shape of careamics' default
N2V U-Net (depth 2, 32 channels in the first level, batch normalisation; written here from that
description), trained with Adam on batches of 64x64 patches; the loss is a plain MSE because only
the cost of a step matters here, not the blind-spot masking.
"""

import time

import torch
from torch import nn


def block(c_in, c_out):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class UNet(nn.Module):
    def __init__(self, channels=32):
        super().__init__()
        c = channels
        self.enc1, self.enc2, self.bottom = block(1, c), block(c, 2 * c), block(2 * c, 4 * c)
        self.dec2, self.dec1 = block(6 * c, 2 * c), block(3 * c, c)
        self.out = nn.Conv2d(c, 1, 1)
        self.pool, self.up = nn.MaxPool2d(2), nn.Upsample(scale_factor=2)

    def forward(self, x):
        a = self.enc1(x)
        b = self.enc2(self.pool(a))
        m = self.bottom(self.pool(b))
        y = self.dec2(torch.cat([self.up(m), b], 1))
        return self.out(self.dec1(torch.cat([self.up(y), a], 1)))


def main():
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    net = UNet()
    optimiser = torch.optim.Adam(net.parameters(), lr=4e-4)
    for batch in (64, 128):
        x = torch.randn(batch, 1, 64, 64)
        times = []
        for _ in range(4):  # the first step warms up
            start = time.perf_counter()
            optimiser.zero_grad()
            loss = ((net(x) - x) ** 2).mean()
            loss.backward()
            optimiser.step()
            times.append(time.perf_counter() - start)
        print(f"batch of {batch} 64x64 patches: {min(times[1:]):.2f} s per training step")
    net.eval()
    with torch.no_grad():
        start = time.perf_counter()
        net(torch.randn(1, 1, 512, 512))
        print(f"prediction of a 512x512 image: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
