"""Stand-in for torch.version."""

cuda = "12.8"
