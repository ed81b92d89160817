"""The live host: ring buffers, the streaming engine, inference backends, and the live/render/devices handlers."""
