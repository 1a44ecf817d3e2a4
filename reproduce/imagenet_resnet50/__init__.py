"""ResNet-50 on ImageNet-1k: the paper's CNN application (batch 512 to 32K)."""
