"""CIFAR-style models (3x3 stem, adaptive pooling) of the RepDistiller/mdistiller zoo."""
