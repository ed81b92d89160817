"""Spectrogram features, paired data, the style-transfer diffusion model, training and distillation."""
