"""The `stylehost` command, which wires the packages together; nothing imports it but the console script."""
