"""The convolutional autoencoder architecture of seed 000 section 9.1, and an encoder that trains
it to reconstruct each image (its bottleneck is the embedding).

The document trains this network to predict the day-10 image from the day-7 image; that is the
``image-predictor`` ranker. Reconstructing the input is phenorank's own use of the architecture,
hence the name ``reconstruction-cae``.
"""

from __future__ import annotations

from .ssl import TrainableEncoder


def conv_autoencoder():
    """(encoder, decoder): 3 -> 16 -> 32 -> 64 (3x3 conv, BatchNorm, ReLU, dropout 0.2/0.3/0.4,
    2x2 max-pool), mirrored decoder (nearest upsampling, 64 -> 32 -> 16 -> 3, dropout 0.3/0.2,
    sigmoid). The output is 8 x ceil(S / 8) pixels wide: crop it to the input's S."""
    from torch import nn

    def down(cin, cout, dropout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.Dropout(dropout),
                nn.MaxPool2d(2, 2, ceil_mode=True)]

    def up(cin, cout, dropout):
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout), nn.ReLU(), nn.Dropout(dropout)]

    encoder = nn.Sequential(*down(3, 16, 0.2), *down(16, 32, 0.3), *down(32, 64, 0.4))
    decoder = nn.Sequential(*up(64, 32, 0.3), *up(32, 16, 0.2), nn.Upsample(scale_factor=2),
                            nn.Conv2d(16, 3, 3, padding=1), nn.Sigmoid())
    return encoder, decoder


class ReconstructionAutoencoder(TrainableEncoder):
    """Seed 000's convolutional autoencoder trained to reconstruct augmented images with MSE,
    Adam 1e-3. Heads: the bottleneck (64 x S/8 x S/8, flattened) and its global average (64-d)."""

    name = "reconstruction-cae"
    heads = ("bottleneck", "pooled")
    defaults = {"model": "", "lr": 1e-3}

    def dataset(self, images, augmentation, groups=None):  # an autoencoder has no positive pairs
        from .training import OneView

        return OneView(images, augmentation)

    def build_module(self):
        import pytorch_lightning as pl
        import torch
        from torch import nn

        from .training import Standardize

        lr = self.params["lr"]

        class CAEModule(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.epochs = 1
                self.standardize = Standardize()  # kept for a uniform interface; the input stays in [0, 1]
                self.encoder, self.decoder = conv_autoencoder()

            def heads_of(self, x):
                code = self.encoder(x)
                return {"bottleneck": code.flatten(1), "pooled": code.mean(dim=(2, 3))}

            def step(self, batch, name):
                reconstruction = self.decoder(self.encoder(batch))
                loss = nn.functional.mse_loss(reconstruction[..., :batch.shape[-2], :batch.shape[-1]], batch)
                self.log(name, loss, on_step=False, on_epoch=True, batch_size=len(batch), sync_dist=True,
                         add_dataloader_idx=False)
                return loss

            def training_step(self, batch, _):
                return self.step(batch, "loss")

            def validation_step(self, batch, _, dataloader_idx: int = 0):
                self.step(batch, f"{self.validation_names[dataloader_idx]}_loss")

            def configure_optimizers(self):
                return torch.optim.Adam(self.parameters(), lr=lr)

        return CAEModule()
