"""Many visitors at once: p50/p95 time to the verdict for 1, 4 and 8 concurrent uploads.

Starts the app (``streamlit run``, background warm-up on, bundled model) on 127.0.0.1, waits
until its Diagnose page is ready, then drives headless Chromium (Playwright): for each
concurrency ``n`` in 1, 4, 8, ``n`` visitors (separate browser contexts, so separate Streamlit
sessions) each open Diagnose, and all drop a different shared val X-ray at the same moment;
each visitor's time runs from its drop to its verdict on screen. Concurrency 1 is repeated 3
times (one visitor at a time). Every image is used once (the app caches analyses by content).

Every verdict is checked against the one a lone upload gets: the same file analysed alone, in
this process, by the app's own analysis function on a plain Predictor (label equal,
probability equal to the 3 decimals shown).

Targets (2 cores): 8 concurrent p95 <= 3 s, every verdict equal to the lone one. Prints
figures; asserts nothing. About 2 minutes; the machine's load inflates the figures.

    python benchmarks/concurrent_diagnose.py [--data ../shared/data/chest_xray]

Last line: ``c1_p50_s=<x> c1_p95_s=<x> c4_p50_s=<x> c4_p95_s=<x> c8_p50_s=<x> c8_p95_s=<x>
verdicts_equal=<k>/<n>``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DEFAULT_DATA,
    READY_TEXT,
    check_prerequisites,
    serve_app,
    val_images,
)

ROUNDS = ((1, 3), (4, 1), (8, 1))  # (concurrent visitors, rounds)
TIMEOUT_MS = 120_000
VERDICT = re.compile(
    r"model output\W+(PNEUMONIA|NORMAL|UNCERTAIN).*?Probability of pneumonia\W+(\d\.\d+)", re.S
)


def lone_verdicts(files: list[Path]) -> dict[str, tuple[str, str]]:
    """``name -> (decision, probability as the page prints it)`` of each file analysed alone."""
    from cxr_app import environment
    from cxr_core.explain.verdict import score_texts
    from cxr_core.inference.predictor import Predictor
    from cxr_core.inference.upload import analyse_upload

    model = sorted((Path(environment.models_dir())).glob("*.keras"))[0]
    predictor = Predictor.from_path(model)
    verdicts = {}
    for path in files:
        result = analyse_upload(predictor, path.read_bytes(), path.name)
        shown, _ = score_texts(result.probability, result.threshold)
        verdicts[path.name] = (result.decision, shown)
    return verdicts


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in (0, 1]) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-int(share * 100) * len(ordered) // 100) - 1))]


async def open_diagnose(browser, url: str):
    context = await browser.new_context(viewport={"width": 1400, "height": 1600})
    page = await context.new_page()
    await page.goto(f"{url}/diagnose", timeout=TIMEOUT_MS)
    await page.get_by_text(READY_TEXT).wait_for(timeout=TIMEOUT_MS)
    return context, page


async def upload(page, path: Path, start: asyncio.Event) -> tuple[float, str, str]:
    await start.wait()
    began = time.perf_counter()
    await page.locator('input[type="file"]').set_input_files(str(path), timeout=TIMEOUT_MS)
    await page.get_by_text(f"{path.name}: model output").wait_for(timeout=TIMEOUT_MS)
    seconds = time.perf_counter() - began
    text = await page.locator('[data-testid="stMain"]').inner_text()
    match = VERDICT.search(text)
    if match is None:
        at = text.find("model output")
        return seconds, "?", repr(text[max(0, at - 80) : at + 300])
    label, probability = match.groups()
    return seconds, label, probability


async def measure(url: str, files: list[Path]) -> dict:
    from playwright.async_api import async_playwright

    results: dict[int, list[float]] = {}
    seen: dict[str, tuple[str, str]] = {}
    queue = list(files)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        _, first = await open_diagnose(browser, url)  # waits for the warm-up to finish
        await first.context.close()
        for visitors, rounds in ROUNDS:
            for _ in range(rounds):
                opened = [await open_diagnose(browser, url) for _ in range(visitors)]
                start = asyncio.Event()
                batch = [queue.pop(0) for _ in range(visitors)]
                tasks = [
                    asyncio.create_task(upload(page, path, start))
                    for (_, page), path in zip(opened, batch, strict=True)
                ]
                await asyncio.sleep(0.2)
                start.set()
                for path, (seconds, label, probability) in zip(
                    batch, await asyncio.gather(*tasks), strict=True
                ):
                    results.setdefault(visitors, []).append(seconds)
                    seen[path.name] = (label, probability)
                for context, _ in opened:
                    await context.close()
        await browser.close()
    return {"times": results, "verdicts": seen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    check_prerequisites(args.data)
    needed = sum(v * r for v, r in ROUNDS)
    files = val_images(args.data)[:needed]
    if len(files) < needed:
        sys.exit(f"error: {needed} val images needed, {len(files)} found under {args.data}")
    lone = lone_verdicts(files)  # before the server starts, so it does not compete
    with serve_app(args.data) as url:
        measured = asyncio.run(measure(url, files))
    figures, equal = [], 0
    print(f"{os.cpu_count()} CPUs; one Chromium, one context per visitor; times drop -> verdict")
    for visitors, times in measured["times"].items():
        p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
        shown = ", ".join(f"{t:.2f}" for t in times)
        print(f"{visitors} concurrent: p50 {p50:.2f} s, p95 {p95:.2f} s (each: {shown})")
        figures.append(f"c{visitors}_p50_s={p50:.2f} c{visitors}_p95_s={p95:.2f}")
    for name, verdict in measured["verdicts"].items():
        same = verdict == lone[name]
        equal += same
        if not same:
            print(f"verdict differs for {name}: app {verdict}, alone {lone[name]}")
    print(" ".join(figures) + f" verdicts_equal={equal}/{len(measured['verdicts'])}")


if __name__ == "__main__":
    main()
