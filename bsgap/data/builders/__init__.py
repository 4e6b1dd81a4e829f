"""Embedded datasets, built offline as real TFDS datasets. Importing registers them with TFDS."""
from bsgap.data.builders.digits import SklearnDigits
from bsgap.data.builders.digits32 import Digits32
from bsgap.data.builders.mnist1d import Mnist1d

EMBEDDED = {"mnist1d": Mnist1d, "sklearn_digits": SklearnDigits, "digits32": Digits32}

__all__ = ["Digits32", "EMBEDDED", "Mnist1d", "SklearnDigits"]
