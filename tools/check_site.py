"""Check the built site in a real browser: python tools/check_site.py [--site _site] [--browser /usr/bin/chromium]

Headless chromium (Debian's, driven by playwright) opens every page of the site `tools/build_site.py` wrote and
checks that it loads, that every image on it has loaded (a real decoded size), that every internal link points at a
page or file of the site (and its #anchor exists there), that the sidebar lists every page, and that no page shows a
Python traceback or an error output. Prints one line per page and exits 1 on any problem.
Needs `pip install playwright` and a chromium (`apt-get install chromium`); playwright's own browser download is not
used."""
import argparse, re, shutil, sys
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--site", default=str(ROOT / "_site"))
    ap.add_argument("--browser", default=shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright
    site = Path(a.site).resolve()
    pages = sorted(site.glob("*.html"))
    if not pages: sys.exit(f"{site}: no pages; build them with python tools/build_site.py")
    problems, ids = [], {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.browser, args=["--no-sandbox"])
        pg = browser.new_page()
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        seen = {}
        for f in pages:
            errors.clear()
            resp = pg.goto(f.as_uri(), wait_until="load")
            found = []
            if resp is not None and not resp.ok: found.append(f"status {resp.status}")
            broken = pg.eval_on_selector_all("img", "els => els.filter(e => !e.complete || e.naturalWidth === 0).map(e => e.getAttribute('src').slice(0, 80))")
            found += [f"image not loaded: {b}" for b in broken]
            text = pg.inner_text("body")
            if "Traceback (most recent call last)" in text: found.append("shows a Python traceback")
            err_cells = pg.eval_on_selector_all(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], .output_error",
                                                "els => els.map(e => e.innerText.slice(0, 120))")
            found += [f"error output: {t!r}" for t in err_cells if re.search(r"\b\w+Error\b|Exception", t)]
            found += [f"script error: {e}" for e in errors]
            ids[f.name] = set(pg.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
            seen[f.name] = (pg.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"),
                            pg.eval_on_selector_all("nav a", "els => els.map(e => e.getAttribute('href'))"))
            problems += [(f.name, x) for x in found]
            n_img = pg.eval_on_selector_all("img", "els => els.length")
            print(f"{f.name}: loaded, {n_img} images, {len(seen[f.name][0])} links" + (f", {len(found)} problems" if found else ""))
        browser.close()
    for name, (hrefs, nav) in seen.items():
        missing_nav = {q.name for q in pages} - set(nav) - {"index.html"}
        if missing_nav: problems.append((name, f"sidebar lacks {sorted(missing_nav)}"))
        for h in hrefs:
            u = urlparse(h)
            if u.scheme in ("http", "https", "mailto") or u.netloc: continue
            target = name if not u.path else unquote(u.path)
            if not (site / target).exists(): problems.append((name, f"link to a missing file: {h}")); continue
            if u.fragment and target.endswith(".html") and u.fragment not in ids.get(target, set()):
                problems.append((name, f"link to a missing anchor: {h}"))
    for name, what in problems: print(f"PROBLEM {name}: {what}")
    print(f"{len(pages)} pages, {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
