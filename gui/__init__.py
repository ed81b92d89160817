"""The PyQt6 performer's panel; talks to the engine only through its parameter/status interface."""
