"""The CNN of the CIFAKE paper (Bird & Lotfi, IEEE Access 2024), its best topology.

Two 3x3 convolutions of 32 filters, each followed by ReLU and 2x2 max pooling (Keras
'valid' padding), flatten, one dense layer of 64 ReLU units, and the output layer. The
paper used one sigmoid unit; genspot uses 2 logits so every model shares one head shape.
"""

from torch import nn

from genspot.models.registry import register_model


class CifakeCNN(nn.Module):
    def __init__(self, num_classes: int = 2, filters: int = 32, dense: int = 64, dropout: float = 0.0, img_size: int = 32) -> None:
        super().__init__()
        side = ((img_size - 2) // 2 - 2) // 2  # two valid 3x3 convs, each pooled by 2: 6 at 32 px, 62 at 256
        if side < 1:
            raise ValueError(f"img_size {img_size} is too small for two convolutions and poolings")
        self.features = nn.Sequential(
            nn.Conv2d(3, filters, 3),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(filters, filters, 3),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(filters * side * side, dense),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(dense, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


# Built for one input size (its dense layer sees the flattened map). Explained after the second
# conv's ReLU (13x13 at 32 px); no CAM: it flattens into dense layers.
@register_model("cifake_cnn", "CIFAKE paper's CNN: 2 conv (32) + dense 64", "Bird & Lotfi 2024", sized=True,
                target_layer="features.4", cam_why="it flattens into dense layers")
def cifake_cnn(num_classes: int = 2, **kwargs) -> nn.Module:
    return CifakeCNN(num_classes=num_classes, **kwargs)
