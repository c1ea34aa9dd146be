"""Build the report's map data, data/maps/, from the boundary files in the workplace's shared/data/boundaries/.

Run by `make data` (after data/build_dataset.py). Writes, deterministically:
- maps/ltla.json: each 2024 lower-tier authority's outline as an SVG path (a simple equirectangular projection for
  England: x = (lon + 6.5) * cos(52.5 deg), y = 56 - lat, scaled by 100 and rounded to 0.2; consecutive points that
  round together are dropped), with the viewBox;
- maps/ltla_hex.json and maps/icb_hex.json: hex cartogram positions (odd-r: q, r) per authority and per ICB;
- maps/ATTRIBUTION.txt: the sources and licences the boundary files ask to be credited.
The engine reads only data/maps/ (never shared/).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "data" / "boundaries"
SCALE = 100.0
STEP = 0.2  # map units (~0.2 km): far below what a report's map shows
COS = math.cos(math.radians(52.5))

ATTRIBUTION = """Map data in this folder, built by data/build_maps.py:

- ltla.json: ONS "Local Authority Districts (May 2024) Boundaries UK BSC", cut to England and reprojected.
  Source: Office for National Statistics licensed under the Open Government Licence v.3.0. Contains OS data
  (c) Crown copyright and database right 2024.
- ltla_hex.json, icb_hex.json: hex cartograms from Open Innovations (odileeds/hexmaps), MIT licence:
  uk-local-authority-districts-2023.hexjson and nhs-icb-2022.hexjson.
"""


def project(lon: float, lat: float) -> tuple[float, float]:
    return (lon + 6.5) * COS * SCALE, (56.0 - lat) * SCALE


def ring_path(ring: list[list[float]]) -> str:
    pts = []
    for lon, lat in ring:
        x, y = project(lon, lat)
        p = (round(x / STEP) * STEP, round(y / STEP) * STEP)
        if not pts or p != pts[-1]:
            pts.append(p)
    if len(pts) < 3:
        return ""
    out = [f"M{pts[0][0]:.1f} {pts[0][1]:.1f}"]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):  # relative steps: short numbers
        out.append(f"l{x1 - x0:.1f} {y1 - y0:.1f}".replace(".0 ", " ").replace(".0l", "l"))
    return "".join(out).replace(".0", "") + "Z"


def geometry_path(geom: dict) -> str:
    polys = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
    return "".join(ring_path(ring) for poly in polys for ring in poly)


def build(source: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    lad = json.loads((source / "lad_may2024_england_bsc.geojson").read_text())
    paths = {f["properties"]["LAD24CD"]: geometry_path(f["geometry"]) for f in lad["features"]}
    xs, ys = [], []
    for f in lad["features"]:
        polys = f["geometry"]["coordinates"] if f["geometry"]["type"] == "MultiPolygon" else [f["geometry"]["coordinates"]]
        for poly in polys:
            for lon, lat in poly[0]:
                x, y = project(lon, lat)
                xs.append(x)
                ys.append(y)
    box = [math.floor(min(xs)) - 2, math.floor(min(ys)) - 2, math.ceil(max(xs) - min(xs)) + 4,
           math.ceil(max(ys) - min(ys)) + 4]
    files = {
        "ltla.json": {"viewBox": box, "paths": dict(sorted(paths.items()))},
        "ltla_hex.json": {"layout": "odd-r", "hexes": {k: [v["q"], v["r"]] for k, v in sorted(json.loads(
            (source / "uk-local-authority-districts-2023.hexjson").read_text())["hexes"].items()) if k.startswith("E")}},
        "icb_hex.json": {"layout": "odd-r", "hexes": {k: [v["q"], v["r"]] for k, v in sorted(json.loads(
            (source / "nhs-icb-2022.hexjson").read_text())["hexes"].items())}},
    }
    for name, content in files.items():
        tmp = out / f"{name}.tmp"
        tmp.write_text(json.dumps(content, separators=(",", ":"), sort_keys=True) + "\n")
        tmp.replace(out / name)
    (out / "ATTRIBUTION.txt").write_text(ATTRIBUTION)
    return {name: (out / name).stat().st_size for name in files}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--out", type=Path, default=HERE / "maps")
    args = ap.parse_args(argv)
    if not args.source.is_dir():
        print(f"build_maps: source folder {args.source} not found", file=sys.stderr)
        return 1
    sizes = build(args.source, args.out)
    print("\n".join(f"{k}: {v:,} bytes" for k, v in sizes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
