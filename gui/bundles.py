"""Model bundles the panel can offer: the DSP passthrough, then what export.bundle.discover finds.

The panel only lists bundles; it loads a choice through realtime.session.open_session, the
same path `live --model` takes, so a broken bundle is a message when streaming starts, not a crash.
Bundles that discovery refuses are still listed (marked, with the reason as tooltip) so a performer
sees why a copied folder does not work instead of wondering where it went.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

PASSTHROUGH_LABEL = "passthrough (no model)"


@dataclass(frozen=True)
class BundleChoice:
    label: str
    path: str | None  # None: the passthrough
    problem: str = ""  # why discovery refused it; empty when it loaded
    note: str = ""  # the bundle's own one-line summary (what it is for, what it trades), if it has one


def available_bundles() -> list[BundleChoice]:
    """Passthrough first, then discovered bundles. Never raises: the panel must open regardless."""
    items = [BundleChoice(PASSTHROUGH_LABEL, None)]
    try:  # export/ is optional at this layer: a build without it still gets the passthrough
        discover = importlib.import_module("export.bundle").discover
    except (ImportError, AttributeError):
        return items
    try:
        found = discover()
    except Exception:  # noqa: BLE001 - an unreadable models folder must not stop the panel from opening
        return items
    for path, bundle in found:
        if isinstance(bundle, Exception):
            items.append(BundleChoice(f"{Path(path).name} (invalid)", str(path), str(bundle)))
        else:
            items.append(BundleChoice(bundle_label(bundle), str(path), note=getattr(bundle, "summary", "")))
    return items


def bundle_label(bundle) -> str:  # noqa: ANN001 - an export.bundle.Bundle (export/ is optional at this layer)
    """Name, version and the model's own latency (its framing; the devices add theirs when streaming starts),
    so a performer choosing between a window bundle and a streaming one sees what each costs in time."""
    kind = ", streaming" if bundle.streaming is not None else ""
    return f"{bundle.name} {bundle.version} ({bundle.latency_ms:.0f} ms model latency{kind})"
