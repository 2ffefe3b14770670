"""ImageNet-style models for 224x224 inputs."""
