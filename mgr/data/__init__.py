"""Plain-PyTorch data code: readers, datasets, transforms and SynthMG (no Lightning here)."""
