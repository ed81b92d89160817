"""Panel widgets: the style-mix pad, level meters and the scrolling spectrogram."""
