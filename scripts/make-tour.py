"""Regenerate the picture tour: docs/tour/*.png, docs/tour.md (English) and docs/ko/tour.md (Korean).

    .venv/bin/python scripts/make-tour.py

Deterministic (fixed seeds); run it after changing anything the tour shows.
"""

from __future__ import annotations

from pathlib import Path

from cnnlab.viz.tour import make_tour

DOCS = Path(__file__).resolve().parent.parent / "docs"

if __name__ == "__main__":
    print(make_tour(DOCS / "tour", "en", page=DOCS / "tour.md"))
    print(make_tour(DOCS / "tour", "ko", page=DOCS / "ko" / "tour.md", draw=False))
