"""Stand-in for torch.cuda: the test machine has no GPU."""


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0
